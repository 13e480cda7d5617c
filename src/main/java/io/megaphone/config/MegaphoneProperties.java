// SPDX-License-Identifier: Apache-2.0
package io.megaphone.config;

import jakarta.validation.Valid;
import jakarta.validation.constraints.DecimalMin;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.NotEmpty;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.Pattern;
import java.time.Duration;
import java.util.List;
import org.hibernate.validator.constraints.time.DurationMax;
import org.hibernate.validator.constraints.time.DurationMin;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * Everything under {@code megaphone.*}. A value that breaks a constraint stops startup with a message naming
 * the property, its value and what is expected.
 */
@ConfigurationProperties("megaphone")
@Validated
public record MegaphoneProperties(@Valid @NotNull @DefaultValue Edge edge, @Valid @NotNull @DefaultValue Link link) {

    static final String STALL_TIMEOUT_RANGE = "must be between 30ms and 299ms: below mod_megaphone's order_timeout"
            + " (300 ms), after which a session's rid N+1 goes to ejabberd without rid N";

    /**
     * The client-facing BOSH side.
     *
     * @param paths the BOSH endpoint paths (POST, OPTIONS, GET)
     * @param upstreamTimeout how long the ECM waits for ejabberd's answer before it answers 504 itself; it must
     *     be longer than the longest BOSH {@code wait} (ejabberd caps {@code wait} at 300 s), so that a healthy
     *     held request is always answered by ejabberd first
     * @param maxBodyBytes the largest request body forwarded; larger ones get 413 (ejabberd's c2s
     *     {@code max_stanza_size} is usually 65536 to 262144)
     * @param retryAfterSeconds the base of the {@code Retry-After} of a 503 (a random 0 to base is added)
     * @param trustedProxies addresses or CIDR blocks of the load balancers in front of the ECM; only from them
     *     is {@code forwarded-header} believed
     * @param forwardedHeader the header the trusted proxies maintain: {@code x-forwarded-for} (nginx, HAProxy, most
     *     cloud and Kubernetes load balancers) or {@code forwarded} (RFC 7239); the other one is ignored, so a client
     *     cannot slip in a chain the proxy does not append to
     * @param drainTimeout on SIGTERM, how long held requests may take to finish before the ECM stops; at least
     *     the longest BOSH {@code wait} clients use (keep {@code spring.lifecycle.timeout-per-shutdown-phase} above)
     * @param drainDelay on SIGTERM, how long readiness stays DOWN before the ECM stops taking connections, even
     *     with nothing held, so load balancers notice first
     * @param requestReadTimeout the longest time a client may take to send a whole request (headers and body);
     *     slower ones (slowloris) get 408 and are closed. It does not limit how long a request is held.
     * @param idleTimeout how long a connection may stay open with no request in it, and the longest time from a
     *     connection's start or its previous answer to the end of the next request's head (a new connection that
     *     never sends counts too, and so does one that trickles its headers); keep it above your load balancer's
     *     idle timeout
     * @param proxyProtocol accept the HAProxy PROXY protocol (v1/v2) header on BOSH connections; turn it on only
     *     when every connection to the BOSH port comes through such a proxy
     * @param websocket the XMPP-over-WebSocket (RFC 7395) endpoint on the same port
     */
    public record Edge(
            @DefaultValue({"/http-bind", "/bosh"}) @NotEmpty List<@Pattern(regexp = "/[^?#]*",
                    message = "must be a path starting with /") String> paths,
            @DefaultValue("310s") @NotNull Duration upstreamTimeout,
            @DefaultValue("262144") @Min(1024) @Max(16_777_216) int maxBodyBytes,
            @DefaultValue("2") @Min(1) @Max(3600) int retryAfterSeconds,
            @Valid @NotNull @DefaultValue Cors cors,
            @DefaultValue({}) List<@NotBlank String> trustedProxies,
            @DefaultValue("x-forwarded-for") @NotNull ForwardedHeader forwardedHeader,
            @DefaultValue("false") boolean proxyProtocol,
            @Valid @NotNull @DefaultValue Admission admission,
            @DefaultValue("75s") @NotNull Duration drainTimeout,
            @DefaultValue("2s") @NotNull Duration drainDelay,
            @DefaultValue("20s") @NotNull Duration requestReadTimeout,
            @DefaultValue("120s") @NotNull Duration idleTimeout,
            @Valid @NotNull @DefaultValue WebSocket websocket) {
    }

    /**
     * XMPP over WebSocket (RFC 7395), carried to ejabberd as a stream of a version-2 link.
     *
     * @param enabled serve the endpoint
     * @param path the endpoint's path (GET with an upgrade to WebSocket, subprotocol {@code xmpp})
     * @param allowedOrigins browser origins allowed to open a stream (exact, e.g. {@code https://chat.example.com}),
     *     or {@code *} for any. The default is {@code *}, as for BOSH's CORS: XMPP authenticates inside the stream
     *     (SASL) and no cookie rides on the handshake, so another site's page gains nothing a script could not do
     *     directly; list your origins to keep other sites from embedding your service. A handshake without an
     *     {@code Origin} (a non-browser client) is never refused for it
     * @param maxMessageBytes the largest text message a client may send; a larger one closes the stream with 1009
     * @param streamWindow the credit granted to ejabberd for each stream: how many bytes of its messages the ECM
     *     buffers for a client that reads slowly; at least {@code max-message-bytes}
     * @param linkLostJitter when a link is lost, each of its streams is closed (1012) after a random delay up to
     *     this, so that its clients do not all reconnect at once
     */
    public record WebSocket(@DefaultValue("true") boolean enabled,
                            @DefaultValue("/xmpp-websocket") @NotNull @Pattern(regexp = "/[^?#]*",
                                    message = "must be a path starting with /") String path,
                            @DefaultValue("*") List<@NotBlank String> allowedOrigins,
                            @DefaultValue("262144") @Min(1024) @Max(16_777_216) int maxMessageBytes,
                            @DefaultValue("524288") @Min(1024) @Max(1L << 31) long streamWindow,
                            @DefaultValue("2s") @NotNull Duration linkLostJitter,
                            @DefaultValue("60s") @NotNull Duration pingInterval,
                            @DefaultValue("200000") @Min(1) int maxOpen) {
        public WebSocket {
            if (streamWindow < maxMessageBytes) {
                throw new IllegalArgumentException("megaphone.edge.websocket.stream-window: " + streamWindow
                        + " (expected: >= max-message-bytes " + maxMessageBytes + ", or no message that size"
                        + " could ever come from ejabberd)");
            }
        }
    }

    /** Which forwarding header trusted proxies maintain. */
    public enum ForwardedHeader { X_FORWARDED_FOR, FORWARDED }

    /**
     * Where the per-client session rate applies. {@code auto}: only to addresses known to be clients' own, that is
     * when {@code trusted-proxies} or the PROXY protocol is configured (with neither, the ECM cannot tell a load
     * balancer from a client, and behind one every client would share the balancer's address and its limit);
     * {@code on}: to every socket peer (clients connect directly); {@code off}: never.
     */
    public enum PerClient { AUTO, ON, OFF }

    /**
     * Admission control against reconnect storms; refusals are 503 with a jittered Retry-After.
     *
     * @param maxHeld held requests at most on this ECM (the memory budget); any request over it is refused
     * @param sessionsPerSecond session creations a second for the whole ECM (requests of existing sessions are
     *     never refused by this)
     * @param sessionsBurst how many session creations may come at once above that rate
     * @param sessionsPerSecondPerClient session creations a second from one client address
     * @param sessionsBurstPerClient the burst for one client address
     * @param perClient where the per-client rate applies ({@link PerClient}); IPv6 clients are counted per /64
     */
    public record Admission(
            @DefaultValue("500000") @Min(1) int maxHeld,
            @DefaultValue("1000") @DecimalMin("0.001") double sessionsPerSecond,
            @DefaultValue("2000") @DecimalMin("1") double sessionsBurst,
            @DefaultValue("10") @DecimalMin("0.001") double sessionsPerSecondPerClient,
            @DefaultValue("20") @DecimalMin("1") double sessionsBurstPerClient,
            @DefaultValue("auto") @NotNull PerClient perClient) {
    }

    /**
     * CORS for browser clients on another origin.
     *
     * @param allowedOrigins exact origins allowed, or {@code *} for any (not allowed with credentials)
     * @param allowCredentials whether browsers may send cookies; the answer then names the exact origin
     * @param maxAge how long a browser may cache a preflight answer
     */
    public record Cors(@DefaultValue("*") List<@NotBlank String> allowedOrigins,
                       @DefaultValue("false") boolean allowCredentials,
                       @DefaultValue("24h") Duration maxAge) {
    }

    /**
     * The megaphone links to ejabberd.
     *
     * @param nodes mod_megaphone addresses ({@code host:port}) of the ejabberd nodes
     * @param linksPerNode how many links (TCP connections) to keep to each node; unset: one per event loop of the web
     *     server (Reactor Netty's {@code reactor.netty.ioWorkerCount}, by default the number of cores and at least 4),
     *     so that every client connection's loop has a link of its own and no request or answer changes threads
     * @param secret the shared secret, at least 32 bytes (prefer {@code MEGAPHONE_LINK_SECRET} or {@code secret-file})
     * @param secretFile a file holding the shared secret (surrounding whitespace is ignored), or one per line for a
     *     rotation: the first proves, a server proving any of them is accepted
     * @param name this ECM's name in ejabberd's logs (default: the host name)
     * @param discovery find ejabberd nodes from one DNS name instead of the {@code nodes} list
     * @param inlineSecretAllowed whether {@code secret} may come from a configuration file; the prod profile sets
     *     false, so the secret comes only from the environment ({@code MEGAPHONE_LINK_SECRET}) or a file
     * @param tls TLS on the links (mod_megaphone's {@code tls} option must match)
     * @param maxFrameBytes the largest frame read from a link (an answer over it fails that one request, the link
     *     stays up); what the ECM sends is bounded by the server's {@code max_frame} from WELCOME
     * @param stallTimeout while requests are in flight on a link, it is closed and its requests are re-sent on
     *     another link when nothing has been read from it for this long after a REQUEST or PING went out (it then
     *     pings every third of it); below mod_megaphone's {@code order_timeout} (300 ms), which holds a session's
     *     rid N+1 that long waiting for rid N
     * @param dns how the links resolve the nodes' host names
     */
    public record Link(
            @DefaultValue("127.0.0.1:5290") List<@Pattern(regexp = ".+:\\d{1,5}",
                    message = "must be host:port") String> nodes,
            @Min(1) @Max(64) Integer linksPerNode,
            String secret,
            String secretFile,
            String name,
            @DefaultValue("15s") @NotNull Duration heartbeat,
            @DefaultValue("5s") @NotNull Duration handshakeTimeout,
            @DefaultValue("50ms") @NotNull Duration reconnectMinBackoff,
            @DefaultValue("500ms") @NotNull Duration reconnectMaxBackoff,
            @DefaultValue("1048576") @Min(4096) int maxFrameBytes,
            @DefaultValue("150ms") @NotNull @DurationMin(millis = 30, message = STALL_TIMEOUT_RANGE)
            @DurationMax(millis = 299, message = STALL_TIMEOUT_RANGE) Duration stallTimeout,
            @DefaultValue("true") boolean inlineSecretAllowed,
            @Valid @NotNull @DefaultValue Discovery discovery,
            @Valid @NotNull @DefaultValue Tls tls,
            @Valid @NotNull @DefaultValue Dns dns) {
    }

    /**
     * The links' DNS resolver (Netty's, non-blocking; answers are kept for their TTL).
     *
     * @param nameServers name servers to ask, as {@code ip:port}, in order; empty: the system's
     *     ({@code /etc/resolv.conf})
     * @param queryTimeout how long to wait for one answer before asking again or failing the connect
     */
    public record Dns(@DefaultValue List<@Pattern(regexp = ".+:\\d{1,5}", message = "must be ip:port")
                              String> nameServers,
                      @DefaultValue("5s") @NotNull Duration queryTimeout) {
    }

    /**
     * TLS on the links to mod_megaphone (its options {@code tls}, {@code certfile}, {@code keyfile}, and for mutual
     * TLS {@code cafile} + {@code verify_client}). The link's secret handshake runs unchanged inside TLS.
     *
     * @param enabled run every link inside TLS (1.3 or 1.2)
     * @param trustCertificates PEM file of the CA (or server) certificates the server's certificate must chain to;
     *     required when enabled
     * @param certificate PEM client certificate (chain) for mutual TLS; with {@code private-key}
     * @param privateKey PEM (PKCS#8) private key of {@code certificate}
     * @param serverName the name sent as SNI and checked against the server certificate; empty: each node's host
     *     as configured in {@code nodes} (or its address with discovery)
     * @param verifyHostname check the server certificate's names against {@code server-name} / the node host; turn
     *     off only when the certificate cannot carry the nodes' names (the CA is then the only check)
     */
    public record Tls(@DefaultValue("false") boolean enabled,
                      @DefaultValue("") String trustCertificates,
                      @DefaultValue("") String certificate,
                      @DefaultValue("") String privateKey,
                      @DefaultValue("") String serverName,
                      @DefaultValue("true") boolean verifyHostname) {
    }

    /**
     * DNS discovery of the ejabberd nodes, e.g. a Kubernetes headless Service.
     *
     * @param dnsName the name that resolves to every node's address; empty turns discovery off
     * @param port mod_megaphone's port on every node
     * @param refreshInterval how often the name is resolved again
     */
    public record Discovery(@DefaultValue("") String dnsName,
                            @DefaultValue("5290") @Min(1) @Max(65535) int port,
                            @DefaultValue("10s") @NotNull Duration refreshInterval) {
    }
}
