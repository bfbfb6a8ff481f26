# syntax=docker/dockerfile:1
#
# meridian container image: a static binary on distroless, running as the
# non-root user, allowed to bind ports below 1024 (DNS on 53, HTTP on 80/443).
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t meridian .
#   docker run --rm -p 53:53/udp -p 53:53/tcp -p 80:80 -p 443:443 -p 9053:9053 meridian
#
# The image ships no config: mount yours, listening on 0.0.0.0 (or the
# node's addresses), at /etc/meridian/meridian.yaml:
#
#   docker run --rm -v "$PWD/meridian.yaml:/etc/meridian/meridian.yaml:ro" ... meridian
#
# Without one, the container exits at once saying so. configs/first-node.yaml
# and configs/example.yaml are configs to start from.

FROM golang:1.26-bookworm AS build

# libcap2-bin gives setcap, below.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends libcap2-bin make \
	&& rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
# .git is not in the build context, so the version comes in as an argument.
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
	--mount=type=cache,target=/root/.cache/go-build \
	make build VERSION="${VERSION}"

# The image runs as nonroot (uid 65532), which may not bind ports below 1024.
# The file capability lets the binary bind them without root. distroless has
# no setcap, so it is set here; COPY keeps the security.capability xattr
# (BuildKit, the default builder, preserves extended attributes).
RUN setcap cap_net_bind_service=+ep bin/meridian \
	&& getcap bin/meridian

FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=build /src/bin/meridian /meridian

# DNS, HTTP, HTTPS, admin API and metrics.
EXPOSE 53/udp 53/tcp 80 443 9053

USER nonroot:nonroot
ENTRYPOINT ["/meridian"]
CMD ["run", "--config", "/etc/meridian/meridian.yaml"]
