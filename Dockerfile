# syntax=docker/dockerfile:1
# Build: a static binary (no cgo), trimmed paths.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/paygate ./cmd/paygate

# Run: distroless static image, non-root user. Mount your own config over
# /etc/paygate/config.yaml (and its key files); the shipped one is sandbox mode.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/paygate /usr/local/bin/paygate
COPY --from=build /src/config.yaml /etc/paygate/config.yaml
COPY --from=build /src/sandbox/keys /etc/paygate/sandbox/keys
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/paygate"]
# The config decides every address. For orchestrator probes of /healthz and
# /readyz, set server.admin_listen to "0.0.0.0:9090" in the mounted config
# (or add -admin-listen to the command) and keep that port off the public
# network: the status page at / is open, /admin/* needs the token.
CMD ["serve", "-config", "/etc/paygate/config.yaml"]
