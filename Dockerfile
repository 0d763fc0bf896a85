# syntax=docker/dockerfile:1

# Multi-arch capable: both base images are published for linux/amd64 and
# linux/arm64, and nothing below is architecture-specific, so
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) ...
# builds both (the release workflow does exactly that).

# Build stage: the same toolchain as CI, dependencies locked.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# Cargo.toml declares the benches; cargo refuses a manifest whose targets are missing.
COPY benches ./benches
# .git is not in the build context: build.rs takes the metadata from these.
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_DATE=unknown
ENV AVEPOINT_EXPORTER_REVISION=${REVISION} \
    AVEPOINT_EXPORTER_BRANCH=${BRANCH} \
    AVEPOINT_EXPORTER_BUILD_DATE=${BUILD_DATE}
RUN cargo build --release --locked --bin avepoint-exporter \
    && strip target/release/avepoint-exporter

# Runtime stage: glibc, CA certificates and a non-root user, nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="avepoint-exporter" \
      org.opencontainers.image.description="Prometheus exporter for AvePoint Elements scan profiles" \
      org.opencontainers.image.source="https://github.com/avepoint-exporter/avepoint-exporter" \
      org.opencontainers.image.url="https://github.com/avepoint-exporter/avepoint-exporter" \
      org.opencontainers.image.documentation="https://github.com/avepoint-exporter/avepoint-exporter#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${BUILD_DATE}"
COPY --from=build /src/target/release/avepoint-exporter /usr/local/bin/avepoint-exporter
# 65532 is distroless's "nonroot" user; numeric so Kubernetes runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 10290
ENTRYPOINT ["/usr/local/bin/avepoint-exporter"]
CMD ["--config.file=/etc/avepoint-exporter/avepoint.yml"]
