package io.megaphone.link;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The HMAC-SHA256 proofs of the link handshake (docs/protocol.md, section 2). The secret is held here only;
 * {@link #toString()} never shows it.
 */
public final class HandshakeProof {

    private static final byte[] AUTH_LABEL = "megaphone-auth".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] WELCOME_LABEL = "megaphone-welcome".getBytes(StandardCharsets.US_ASCII);
    private static final SecureRandom RANDOM = new SecureRandom();

    private final SecretKeySpec key;

    public HandshakeProof(byte[] secret) {
        if (secret == null || secret.length == 0) {
            throw new IllegalArgumentException("secret: empty (expected: at least one byte)");
        }
        this.key = new SecretKeySpec(secret, "HmacSHA256");
    }

    static byte[] newNonce() {
        byte[] nonce = new byte[FrameCodec.NONCE_BYTES];
        RANDOM.nextBytes(nonce);
        return nonce;
    }

    /** The client's proof: HMAC(secret, "megaphone-auth" || version || server_nonce || client_nonce || name). */
    byte[] authMac(int version, byte[] serverNonce, byte[] clientNonce, String name) {
        return mac(AUTH_LABEL, new byte[] {(byte) version}, serverNonce, clientNonce,
                name.getBytes(StandardCharsets.UTF_8));
    }

    /** The server's proof: HMAC(secret, "megaphone-welcome" || version || client_nonce || server_nonce). */
    byte[] welcomeMac(int version, byte[] clientNonce, byte[] serverNonce) {
        return mac(WELCOME_LABEL, new byte[] {(byte) version}, clientNonce, serverNonce);
    }

    /** Constant-time comparison, so a peer learns nothing from how long a wrong mac takes to refuse. */
    static boolean matches(byte[] expected, byte[] actual) {
        return MessageDigest.isEqual(expected, actual);
    }

    private byte[] mac(byte[]... parts) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(key);
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
