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
# The admin listener binds all interfaces inside the container so that
# orchestrators can reach /healthz and /readyz; /admin/* still needs the token.
CMD ["serve", "-config", "/etc/paygate/config.yaml", "-admin-listen", "0.0.0.0:9090"]
