# syntax=docker/dockerfile:1

# Build stage: the same toolchain as CI, dependencies locked.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml declares the benches; cargo refuses a manifest whose targets are missing.
COPY benches ./benches
ARG AVEPOINT_EXPORTER_REVISION=unknown
ENV AVEPOINT_EXPORTER_REVISION=${AVEPOINT_EXPORTER_REVISION}
RUN cargo build --release --locked --bin avepoint-exporter \
    && strip target/release/avepoint-exporter

# Runtime stage: glibc, CA certificates and a non-root user, nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/avepoint-exporter /usr/local/bin/avepoint-exporter
# 65532 is distroless's "nonroot" user; numeric so Kubernetes runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 10290
ENTRYPOINT ["/usr/local/bin/avepoint-exporter"]
CMD ["--config.file=/etc/avepoint-exporter/avepoint.yml"]
