# Megaphone ECM container image.
#
#   docker build -t megaphone-ecm .
#   docker run --rm -p 5280:5280 -p 9090:9090 \
#     -e MEGAPHONE_LINK_NODES=ejabberd.example.net:5290 -e MEGAPHONE_LINK_SECRET=s3cret megaphone-ecm
#
# Stage 1 builds the Spring Boot jar with the Maven wrapper on Java 17 (the project's build level) and
# extracts its layers; stage 2 runs it on a Java 25 JRE as a non-root user. Layers are copied from the
# least to the most often changed, so a code change rebuilds only the last, small layer.

FROM eclipse-temurin:17-jdk AS build
WORKDIR /src
# The wrapper and the POM first: the dependency download is cached until pom.xml changes.
COPY mvnw pom.xml ./
COPY .mvn/ .mvn/
RUN chmod +x mvnw && ./mvnw -B -ntp -q dependency:go-offline
COPY src/ src/
RUN ./mvnw -B -ntp -DskipTests package \
    && cp target/megaphone-ecm-*.jar /tmp/app.jar \
    && java -Djarmode=tools -jar /tmp/app.jar extract --layers --launcher --destination /extracted

FROM eclipse-temurin:25-jre
LABEL org.opencontainers.image.title="megaphone-ecm" \
      org.opencontainers.image.description="Megaphone ECM: BOSH connection manager in front of ejabberd" \
      org.opencontainers.image.licenses="Apache-2.0"
# A numeric, non-root user: Kubernetes runAsNonRoot can check a numeric UID without reading /etc/passwd.
RUN groupadd --system --gid 10001 megaphone \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin megaphone
WORKDIR /app
COPY --from=build /extracted/dependencies/ ./
COPY --from=build /extracted/spring-boot-loader/ ./
COPY --from=build /extracted/snapshot-dependencies/ ./
COPY --from=build /extracted/application/ ./
USER 10001:10001

# BOSH (server.port) and management/Actuator (management.server.port).
ENV MEGAPHONE_HTTP_PORT=5280 \
    MEGAPHONE_MANAGEMENT_PORT=9090
EXPOSE 5280 9090

# JVM flags, container-aware: the heap is a share of the container's memory limit (the rest is direct
# buffers, metaspace, thread stacks and the kernel's socket memory); compact object headers (Java 25)
# shrink every object, which counts at hundreds of thousands of held requests.
# The GC is docs/benchmarks.md's choice (memory per held request vs pause times); G1 until it says
# otherwise. Replace it with JAVA_GC_OPTS (e.g. "-XX:+UseSerialGC"), add flags with JAVA_OPTS.
ENV JAVA_GC_OPTS="-XX:+UseG1GC" \
    JAVA_OPTS=""
# The exec form runs sh only to expand the two variables; exec hands PID 1 to the JVM so that SIGTERM
# reaches it and starts the graceful drain. Arguments after the image name go to Spring Boot.
ENTRYPOINT ["sh", "-c", "exec java -XX:MaxRAMPercentage=75 -XX:+UseCompactObjectHeaders -XX:+ExitOnOutOfMemoryError $JAVA_GC_OPTS $JAVA_OPTS org.springframework.boot.loader.launch.JarLauncher \"$@\"", "megaphone-ecm"]
# No HEALTHCHECK: Kubernetes ignores it and uses the chart's probes on /actuator/health/{liveness,readiness}.
