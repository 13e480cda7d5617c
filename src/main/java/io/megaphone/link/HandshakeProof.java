// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The HMAC-SHA256 proofs of the link handshake (docs/protocol.md, section 2). The secrets are held here only;
 * {@link #toString()} never shows them. For a rotation it holds several: the first proves (AUTH), and a WELCOME
 * proved with any of them is accepted.
 */
public final class HandshakeProof {

    private static final byte[] AUTH_LABEL = "megaphone-auth".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] WELCOME_LABEL = "megaphone-welcome".getBytes(StandardCharsets.US_ASCII);
    private static final SecureRandom RANDOM = new SecureRandom();

    private final SecretKeySpec key;
    private final List<SecretKeySpec> accepted;

    public HandshakeProof(byte[] secret) {
        this(List.of(secret));
    }

    /** @param secrets the first proves; a WELCOME proved with any is accepted */
    public HandshakeProof(List<byte[]> secrets) {
        if (secrets.isEmpty()) {
            throw new IllegalArgumentException("secrets: [] (expected: at least one)");
        }
        List<SecretKeySpec> keys = new ArrayList<>();
        for (byte[] secret : secrets) {
            if (secret == null || secret.length == 0) {
                throw new IllegalArgumentException("secret: empty (expected: at least one byte)");
            }
            keys.add(new SecretKeySpec(secret, "HmacSHA256"));
        }
        this.key = keys.get(0);
        this.accepted = List.copyOf(keys);
    }

    static byte[] newNonce() {
        byte[] nonce = new byte[FrameCodec.NONCE_BYTES];
        RANDOM.nextBytes(nonce);
        return nonce;
    }

    /** The client's proof: HMAC(secret, "megaphone-auth" || version || server_nonce || client_nonce || name). */
    byte[] authMac(int version, byte[] serverNonce, byte[] clientNonce, String name) {
        return mac(key, AUTH_LABEL, new byte[] {(byte) version}, serverNonce, clientNonce,
                name.getBytes(StandardCharsets.UTF_8));
    }

    /** The server's proof: HMAC(secret, "megaphone-welcome" || version || client_nonce || server_nonce). */
    byte[] welcomeMac(int version, byte[] clientNonce, byte[] serverNonce) {
        return mac(key, WELCOME_LABEL, new byte[] {(byte) version}, clientNonce, serverNonce);
    }

    /** Whether {@code mac} is the server's proof under any of the secrets (the server proves with the one it matched). */
    boolean welcomeMatches(int version, byte[] clientNonce, byte[] serverNonce, byte[] mac) {
        boolean any = false;
        for (SecretKeySpec secret : accepted) { // all of them, so the time says nothing about which
            any |= matches(mac(secret, WELCOME_LABEL, new byte[] {(byte) version}, clientNonce, serverNonce), mac);
        }
        return any;
    }

    /** Constant-time comparison, so a peer learns nothing from how long a wrong mac takes to refuse. */
    static boolean matches(byte[] expected, byte[] actual) {
        return MessageDigest.isEqual(expected, actual);
    }

    private static byte[] mac(SecretKeySpec secret, byte[]... parts) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(secret);
            for (byte[] part : parts) {
                mac.update(part);
            }
            return mac.doFinal();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is required of every Java runtime", e);
        }
    }

    @Override
    public String toString() {
        return "HandshakeProof[secret=****]";
    }
}
