# syntax=docker/dockerfile:1
#
# Targets:
#   docker build -t paygate .                       production image (the default, last stage):
#                                                   the binary only; mount your config and keys
#   docker build --target sandbox -t paygate:sandbox .   the binary plus the shipped sandbox
#                                                   config and its PUBLIC test keys; never production
#
# The build context has no .git (.dockerignore), so the version and revision
# come from build arguments:
#   docker build --build-arg VERSION=v0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .

# Build: a static binary (no cgo), trimmed paths, version stamped at link time.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG REVISION=""
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags="-s -w -X github.com/paygate/paygate/version.version=${VERSION} -X github.com/paygate/paygate/version.revision=${REVISION}" \
      -o /out/paygate ./cmd/paygate \
 && /out/paygate version

# Sandbox: the shipped sandbox config (simulators in-process, demo merchant,
# inline test secrets) and the public test keys it names. For trying paygate
# out and for integration tests; it must never hold real money.
FROM gcr.io/distroless/static-debian12:nonroot AS sandbox
COPY --from=build /out/paygate /usr/local/bin/paygate
COPY --from=build /src/config.yaml /etc/paygate/config.yaml
COPY --from=build /src/sandbox/keys /etc/paygate/sandbox/keys
USER nonroot:nonroot
EXPOSE 8080 9090
# The admin listener answers /readyz on 127.0.0.1:9090 inside the container
# by default; change -addr if server.admin_listen uses another port.
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/paygate", "healthcheck", "-addr", "127.0.0.1:9090"]
ENTRYPOINT ["/usr/local/bin/paygate"]
CMD ["serve", "-config", "/etc/paygate/config.yaml"]

# Production: the binary and nothing else — no config, no keys. Mount the
# config at /etc/paygate/config.yaml and its key files (or pass secrets by
# environment: *_env keys). Distroless static, non-root, no shell.
FROM gcr.io/distroless/static-debian12:nonroot AS production
COPY --from=build /out/paygate /usr/local/bin/paygate
USER nonroot:nonroot
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/paygate", "healthcheck", "-addr", "127.0.0.1:9090"]
ENTRYPOINT ["/usr/local/bin/paygate"]
# The config decides every address. For orchestrator probes of /healthz and
# /readyz from outside the container, set server.admin_listen to
# "0.0.0.0:9090" in the mounted config and keep that port off the public
# network: the status page at / is open, /admin/* needs the token.
CMD ["serve", "-config", "/etc/paygate/config.yaml"]
