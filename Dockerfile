# SPDX-License-Identifier: Apache-2.0
# Megaphone ECM container image.
#
#   docker build -t megaphone-ecm .
#   docker run --rm -p 5280:5280 -p 9090:9090 \
#     -e MEGAPHONE_LINK_NODES=ejabberd.example.net:5290 -e MEGAPHONE_LINK_SECRET=s3cret megaphone-ecm
#
# Stage 1 builds the Spring Boot jar (bytecode for Java 17, pom.xml) with the Maven wrapper on Java 25 and extracts
# its layers; stage 2 runs it on a Java 25 JRE with compact object headers, as a non-root user. Layers are copied
# from the least to the most often changed, so a code change rebuilds only the last, small layer.
#
# The bases are build arguments. The defaults are the public Eclipse Temurin images; a Debian or Ubuntu base whose
# packages have OpenJDK 25 works too (Debian 13 "trixie" and later; it is then installed from them), e.g. one made
# from Debian packages where Docker Hub is out of reach (scripts/container-test.sh does this with mmdebstrap):
#
#   podman build --network host \
#     --build-arg BUILD_IMAGE=localhost/debian:trixie --build-arg RUNTIME_IMAGE=localhost/debian:trixie \
#     -v /etc/ssl/certs/java/cacerts:/run/host-cacerts:ro --build-arg JAVA_TRUSTSTORE=/run/host-cacerts \
#     -t megaphone-ecm .
#
# JAVA_TRUSTSTORE (optional) is a Java truststore mounted into the build for the Maven downloads, for build hosts
# behind a TLS-inspecting proxy whose CA only the host trusts.

ARG BUILD_IMAGE=eclipse-temurin:25-jdk
ARG RUNTIME_IMAGE=eclipse-temurin:25-jre

FROM ${BUILD_IMAGE} AS build
# A plain Debian/Ubuntu base has no JDK; the Maven wrapper needs unzip (or curl/wget, else Java) for Maven itself.
RUN missing=""; \
    command -v javac >/dev/null 2>&1 || missing="$missing openjdk-25-jdk-headless"; \
    command -v unzip >/dev/null 2>&1 || missing="$missing unzip"; \
    if [ -n "$missing" ]; then \
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing \
      && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
ARG JAVA_TRUSTSTORE=""
# The wrapper and the POM first: the dependency download is cached until pom.xml changes.
COPY mvnw pom.xml ./
COPY .mvn/ .mvn/
RUN chmod +x mvnw \
    && JAVA_TOOL_OPTIONS="${JAVA_TRUSTSTORE:+-Djavax.net.ssl.trustStore=$JAVA_TRUSTSTORE}" \
       ./mvnw -B -ntp -q dependency:go-offline
COPY src/ src/
RUN JAVA_TOOL_OPTIONS="${JAVA_TRUSTSTORE:+-Djavax.net.ssl.trustStore=$JAVA_TRUSTSTORE}" \
       ./mvnw -B -ntp -q -Dmaven.test.skip=true package \
    && cp target/megaphone-ecm-*.jar /tmp/app.jar \
    && java -Djarmode=tools -jar /tmp/app.jar extract --layers --launcher --destination /extracted

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="megaphone-ecm" \
      org.opencontainers.image.description="Megaphone ECM: BOSH connection manager in front of ejabberd" \
      org.opencontainers.image.licenses="Apache-2.0"
# tini is PID 1: it forwards SIGTERM to the JVM and maps the JVM's exit status after a SIGTERM (143) to 0, so a
# completed drain reads as a clean exit. A plain Debian/Ubuntu base also gets its Java 25 JRE here. The build stops
# here when the base's java has no compact object headers (a product flag from Java 25 on): the image needs 25.
RUN missing="tini"; \
    command -v java >/dev/null 2>&1 || missing="$missing openjdk-25-jre-headless"; \
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing \
    && rm -rf /var/lib/apt/lists/* \
    && { java -XX:+UseCompactObjectHeaders -version >/dev/null 2>&1 \
         || { echo "RUNTIME_IMAGE: $(java -version 2>&1 | head -n 1) (expected: Java 25 or later)" >&2; exit 1; }; } \
    && groupadd --system --gid 10001 megaphone \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin megaphone
# A numeric, non-root user (above): Kubernetes runAsNonRoot can check a numeric UID without reading /etc/passwd.
WORKDIR /app
COPY LICENSE NOTICE ./
COPY --from=build /extracted/dependencies/ ./
COPY --from=build /extracted/spring-boot-loader/ ./
COPY --from=build /extracted/snapshot-dependencies/ ./
COPY --from=build /extracted/application/ ./
USER 10001:10001

# BOSH (server.port) and management/Actuator (management.server.port).
ENV MEGAPHONE_HTTP_PORT=5280 \
    MEGAPHONE_MANAGEMENT_PORT=9090
EXPOSE 5280 9090

# JVM flags for hundreds of thousands of sockets (docs/operations.md, "Memory sizing"):
# * JAVA_HEAP_PERCENT: the heap is this share of the container's memory limit. The rest is for what is not heap
#   and grows with the load: the kernel's socket buffers (about 5 KB per connection, charged to the container's
#   memory cgroup), direct buffers, metaspace, thread stacks.
# * JAVA_MAX_DIRECT_MEMORY: bounds direct buffers, Netty's pool included (Netty takes its limit from
#   -XX:MaxDirectMemorySize when io.netty.maxDirectMemory is unset).
# * JAVA_ACTIVE_PROCESSORS: the CPUs the JVM sizes its GC and Netty's event loops for. Unset, the JVM follows a CPU
#   quota (a Kubernetes CPU limit) itself; set it where there is only a request (the Helm chart passes limits.cpu).
# * JAVA_GC_OPTS replaces the GC (G1; e.g. "-XX:+UseSerialGC"), JAVA_OPTS adds flags.
# * Compact object headers (-XX:+UseCompactObjectHeaders) are on: smaller objects, less heap per held request
#   (docs/benchmarks.md). JAVA_OPTS="-XX:-UseCompactObjectHeaders" turns them off.
# * --enable-native-access=ALL-UNNAMED: Netty loads its epoll library without Java 24+'s restricted-method warning.
ENV JAVA_HEAP_PERCENT=60 \
    JAVA_MAX_DIRECT_MEMORY=256m \
    JAVA_ACTIVE_PROCESSORS="" \
    JAVA_GC_OPTS="-XX:+UseG1GC" \
    JAVA_OPTS=""
# sh expands the variables; exec hands its PID to the JVM (tini's child), so that SIGTERM reaches it and starts the
# graceful drain. Arguments after the image name go to Spring Boot.
ENTRYPOINT ["tini", "-e", "143", "--", "sh", "-c", "exec java -XX:MaxRAMPercentage=$JAVA_HEAP_PERCENT -XX:MaxDirectMemorySize=$JAVA_MAX_DIRECT_MEMORY ${JAVA_ACTIVE_PROCESSORS:+-XX:ActiveProcessorCount=$JAVA_ACTIVE_PROCESSORS} -XX:+ExitOnOutOfMemoryError -XX:+UseCompactObjectHeaders --enable-native-access=ALL-UNNAMED $JAVA_GC_OPTS $JAVA_OPTS org.springframework.boot.loader.launch.JarLauncher \"$@\"", "megaphone-ecm"]
# No HEALTHCHECK: Kubernetes ignores it and uses the chart's probes on /actuator/health/{liveness,readiness}.
