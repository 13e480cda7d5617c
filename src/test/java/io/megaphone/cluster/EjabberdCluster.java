// SPDX-License-Identifier: Apache-2.0
package io.megaphone.cluster;

import io.megaphone.it.EcmProcess;
import io.megaphone.it.PrivateEjabberd;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Two private ejabberd nodes (the Debian package, with this repo's mod_megaphone) clustered on one machine:
 * node 1 {@code megaphone@127.0.0.2} and node 2 {@code megaphone@127.0.0.3}. With {@code ERL_DIST_PORT} and no
 * epmd a node reaches every other node at its own dist port, so both nodes share one dist port on their own
 * loopback address, and every listener (c2s, ejabberd's HTTP, mod_megaphone) binds to the node's address on the
 * same port on both: one DNS name and one port reach every node, as a headless Service does. Node 2 joins node 1
 * with {@code ejabberdctl join_cluster}; users registered through either exist on both.
 *
 * <p>{@link #hostsFile()} maps {@link #DNS_NAME} to both addresses, for ECMs started with
 * {@code -Djdk.net.hosts.file}.
 */
public final class EjabberdCluster implements AutoCloseable {

    public static final String DNS_NAME = "ejabberd-cluster";
    public static final String PASSWORD = "cluster-pw";
    public static final String DOMAIN = PrivateEjabberd.DOMAIN;
    static final List<String> IPS = List.of("127.0.0.2", "127.0.0.3");
    private static final AtomicInteger USERS = new AtomicInteger();

    private final List<PrivateEjabberd> nodes = new ArrayList<>();
    private final boolean[] stopped = new boolean[IPS.size()];
    final int linkPort;
    final int httpPort;
    private final Path hostsFile;

    private EjabberdCluster(int linkPort, int httpPort, Path hostsFile) {
        this.linkPort = linkPort;
        this.httpPort = httpPort;
        this.hostsFile = hostsFile;
    }

    /** Starts node 1, then node 2, joins node 2 to node 1, and checks both list both. */
    public static EjabberdCluster start() throws Exception {
        int[] ports = freePorts(4);
        Path hosts = Files.createTempFile("megaphone-cluster-hosts-", "");
        StringBuilder lines = new StringBuilder();
        for (String ip : IPS) {
            lines.append(ip).append(' ').append(DNS_NAME).append('\n');
        }
        Files.writeString(hosts, lines);
        EjabberdCluster cluster = new EjabberdCluster(ports[1], ports[2], hosts);
        String cookie = "megaphone-cluster-" + Long.toHexString(System.nanoTime());
        try {
            for (String ip : IPS) {
                cluster.nodes.add(PrivateEjabberd.start(Map.of(
                        "EJ_IP", ip,
                        "EJ_NODE", nodeName(ip),
                        "EJ_DIST_PORT", Integer.toString(ports[0]),
                        "EJ_LINK_PORT", Integer.toString(ports[1]),
                        "EJ_HTTP_PORT", Integer.toString(ports[2]),
                        "EJ_C2S_PORT", Integer.toString(ports[3]),
                        "EJ_COOKIE", cookie,
                        // long enough for a test to check each step of a race between nodes (ClusterTest)
                        "EJ_ORDER_TIMEOUT", "5000")));
            }
            cluster.nodes.get(1).join(nodeName(IPS.get(0)));
            for (int i = 0; i < IPS.size(); i++) {
                String members = cluster.ctl(i, "list_cluster");
                for (String ip : IPS) {
                    if (!members.contains(nodeName(ip))) {
                        throw new IllegalStateException("node " + (i + 1) + " does not list " + nodeName(ip)
                                + " in its cluster:\n" + members);
                    }
                }
            }
            System.out.println("[ejabberd cluster] " + nodeName(IPS.get(0)) + " + " + nodeName(IPS.get(1))
                    + ", link port " + ports[1] + ", " + DNS_NAME + " in " + hosts);
            return cluster;
        } catch (Exception | Error e) {
            cluster.close();
            throw e;
        }
    }

    static String nodeName(String ip) {
        return "megaphone@" + ip;
    }

    /** Node {@code index} (0 or 1)'s Erlang node name. */
    public String nodeName(int index) {
        return nodeName(IPS.get(index));
    }

    public int linkPort() {
        return linkPort;
    }

    /** A hosts file (for {@code -Djdk.net.hosts.file}) in which {@link #DNS_NAME} has both nodes' addresses. */
    public Path hostsFile() {
        return hostsFile;
    }

    /**
     * Starts an ECM as its own OS process ({@link EcmProcess}) linked to every node through DNS discovery:
     * {@code --megaphone.link.discovery.dns-name=}{@link #DNS_NAME}, resolved by Java's hosts-file name service
     * ({@code -Djdk.net.hosts.file=}{@link #hostsFile()}) to both nodes' addresses; waits (at most 90 s) until it
     * has {@code linksPerNode} ready links to each node. Lean JVM flags: the machine is shared. Binds 127.0.0.1
     * only: a wildcard bind fails while any socket of the machine holds the same local port on any address.
     */
    public EcmProcess startEcm(String name, int linksPerNode) throws Exception {
        int wanted = linksPerNode * IPS.size();
        EcmProcess ecm = EcmProcess.builder().name(name).maxHeap("128m")
                .jvmOptions("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djdk.net.hosts.file=" + hostsFile)
                .args("--megaphone.link.discovery.dns-name=" + DNS_NAME,
                        "--megaphone.link.discovery.port=" + linkPort,
                        "--megaphone.link.discovery.refresh-interval=1s",
                        "--megaphone.link.links-per-node=" + linksPerNode,
                        "--megaphone.link.name=" + name)
                .waitForReadyLinks(wanted).start();
        System.out.println("[ecm " + name + "] port " + ecm.port + ", " + wanted + " links ready, log " + ecm.log);
        return ecm;
    }

    /**
     * Starts an ECM (as {@link #startEcm}) linked to node {@code index} only ({@code --megaphone.link.nodes}), so
     * a test knows which node each of its requests reaches.
     */
    public EcmProcess startEcmOn(String name, int index, int links) throws Exception {
        EcmProcess ecm = EcmProcess.builder().name(name).maxHeap("128m")
                .jvmOptions("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
                .args("--megaphone.link.nodes=" + IPS.get(index) + ":" + linkPort,
                        "--megaphone.link.links-per-node=" + links,
                        "--megaphone.link.name=" + name)
                .waitForReadyLinks(links).start();
        System.out.println("[ecm " + name + "] port " + ecm.port + ", linked to node " + (index + 1) + " only");
        return ecm;
    }

    /** Node {@code index}'s own BOSH endpoint (ejabberd's HTTP listener, not through an ECM). */
    public String directBoshUrl(int index) {
        return "http://" + IPS.get(index) + ":" + httpPort + "/http-bind";
    }

    /** Registers a fresh user (name unique in this run) through the first running node, returns its name. */
    public String newUser(String prefix) throws Exception {
        String user = prefix + USERS.incrementAndGet();
        for (int i = 0; i < nodes.size(); i++) {
            if (!stopped[i]) {
                nodes.get(i).register(user, PASSWORD);
                return user;
            }
        }
        throw new IllegalStateException("no node runs");
    }

    /** Runs ejabberdctl on node {@code index}. */
    public String ctl(int index, String... args) throws Exception {
        return nodes.get(index).ctl(args);
    }

    /** The Erlang node that holds {@code user}'s sessions, from {@code user_sessions_info} on node {@code via}. */
    public List<String> sessionNodes(int via, String user) throws Exception {
        List<String> found = new ArrayList<>();
        for (String line : ctl(via, "user_sessions_info", user, DOMAIN).split("\\R")) {
            for (String ip : IPS) {
                if (line.contains(nodeName(ip))) {
                    found.add(nodeName(ip));
                }
            }
        }
        return found;
    }

    /** One counter of mod_megaphone's {@code megaphone_stats} on node {@code index}. */
    public long megaphoneStat(int index, String counter) throws Exception {
        for (String line : ctl(index, "megaphone_stats").split("\\R")) {
            String[] parts = line.trim().split("\\s+");
            if (parts.length == 2 && parts[0].equals(counter)) {
                return Long.parseLong(parts[1]);
            }
        }
        throw new IllegalStateException("no counter " + counter + " on node " + (index + 1));
    }

    public String log(int index) throws IOException {
        return nodes.get(index).log();
    }

    /** Stops node {@code index} with {@code ejabberdctl stop} (the other one stays up). */
    public void stopNode(int index) {
        stopped[index] = true;
        nodes.get(index).stop();
    }

    @Override
    public void close() {
        for (int i = nodes.size() - 1; i >= 0; i--) {
            stopped[i] = true;
            nodes.get(i).stop();
        }
        try {
            Files.deleteIfExists(hostsFile);
        } catch (IOException ignored) {
            // a temp file
        }
    }

    /** Ports free on both nodes' addresses (and on 127.0.0.1, where the ECMs pick theirs). */
    private static int[] freePorts(int count) throws IOException {
        int[] ports = new int[count];
        List<ServerSocket> held = new ArrayList<>();
        try {
            for (int i = 0; i < count; ) {
                ServerSocket first = new ServerSocket();
                first.bind(new InetSocketAddress(InetAddress.getByName(IPS.get(0)), 0));
                held.add(first);
                int port = first.getLocalPort();
                if (freeOn(port, IPS.get(1)) && freeOn(port, "127.0.0.1")) {
                    ports[i++] = port;
                }
            }
        } finally {
            for (ServerSocket socket : held) {
                socket.close();
            }
        }
        return ports;
    }

    private static boolean freeOn(int port, String ip) {
        try (ServerSocket socket = new ServerSocket()) {
            socket.bind(new InetSocketAddress(InetAddress.getByName(ip), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }
}
