# herald's container image: a static binary on distroless, run as non-root.
#
#   docker build -t herald .
#   docker run --rm -p 8080:8080 -e HERALD_REDIS_URL=... -e HERALD_SESSION_SECRET=... -e HERALD_WS_TOKEN_SECRET=... herald
#
# The socket core uses epoll, so the image is Linux-only (as containers are).
# Only classic Dockerfile features are used, so docker-compose v1's builder
# can build it as well as BuildKit.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer stays cached while only the sources change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
# herald --version and herald_build_info: docker build --build-arg
# VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD)
ARG VERSION=devel
ARG COMMIT=unknown
RUN go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/herald ./cmd/herald \
 && go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./cmd/healthcheck

# static-debian12: CA certificates (for an https JWKS URL, rediss://) and
# tzdata, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/herald /usr/local/bin/herald
# The docker-compose healthcheck: GETs http://127.0.0.1:8080/readyz.
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
# distroless' "nonroot" user, numeric so that Kubernetes' runAsNonRoot can
# verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/herald"]
