# syntax=docker/dockerfile:1
# Build stage: the action for the runner's architecture, and the small
# snapshot helper for both host architectures (built once here, not at run time).
# Cross-compiles on the build machine: no QEMU for the arm64 image.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/sqlite-backup-action . \
 && for arch in amd64 arm64; do \
      CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags="-s -w" \
        -o /out/helpers/sqlite-backup-helper-linux-$arch ./cmd/sqlite-backup-helper; \
    done \
 && mkdir -p /out/tmp && chmod 1777 /out/tmp

# Final stage: only the binary, the helpers, CA certificates and an empty /tmp.
# Runs as root: the runner's GITHUB_OUTPUT files belong to the runner user,
# which a non-root USER could not write.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/tmp /tmp
COPY --from=build /out/helpers/ /usr/local/lib/sqlite-backup-action/
COPY --from=build /out/sqlite-backup-action /usr/local/bin/sqlite-backup-action
USER 0:0
ENTRYPOINT ["/usr/local/bin/sqlite-backup-action"]
