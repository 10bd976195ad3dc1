# syntax=docker/dockerfile:1
#
# lameduck container image: one static binary in an otherwise empty (`scratch`) image.
#
#   docker build -t lameduck:0.1.0 .
#   docker run --rm -p 8080:8080 lameduck:0.1.0
#
# CI builds and runs this image with a real engine (podman with runc): tests/podman.rs builds the
# runtime stage below, instruction for instruction, on the binary deploy/build-static.sh makes (the
# script this file's build stage runs, as tests/deploy.rs checks), then runs it as the manifest
# does, stops it, and plays deploy/kubernetes.yaml. Only the build stage does not run there: its
# base image cannot be pulled in CI (no registry access).

# ---------------------------------------------------------------------------------------------
# Build stage.
#
# Pinned to an exact release so the image is reproducible and matches the compiler CI tests
# with (rustc 1.95.0 on Debian bookworm). For a release pipeline, pin the digest as well
# (`rust:1.95.0-slim-bookworm@sha256:...`) so a re-pushed tag cannot change the build.
FROM rust:1.95.0-slim-bookworm AS build

# The musl target makes the binary static: musl's libc is linked in, so the final image needs no
# /lib at all. Rust ships the musl C runtime objects with the target, and every dependency is
# pure Rust, so no musl-gcc (musl-tools) is needed; add it here if a dependency ever compiles C.
# rust-src is std's source: deploy/build-static.sh rebuilds std without its backtrace
# symbolizer, which takes 214 KiB off the binary and so off the idle RSS (the script says
# why and what it costs: RUST_BACKTRACE has nothing to print, a panic still unwinds).
RUN rustup target add x86_64-unknown-linux-musl && rustup component add rust-src

WORKDIR /src
COPY . .

# The script builds exactly the dependency versions in Cargo.lock (`--locked`), as CI does, with
# the release profile in Cargo.toml (LTO, one codegen unit, strip), and prints "PATH SIZE".
# The cache mounts keep the crate registry and the target dir between builds (BuildKit), so
# only changed code recompiles; the binary is copied out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    deploy/build-static.sh >/tmp/built \
 && read -r bin size </tmp/built \
 && install -D -m 0555 "$bin" /out/rootfs/lameduck

# The image's whole root file system is laid out here, because `scratch` has no shell to do it:
# besides the binary, an empty /tmp (COPY cannot create an empty directory). Sticky and
# world-writable (1777, like a normal /tmp) so the liveness file can be written whichever uid an
# orchestrator chooses to run us as.
RUN install -d -m 1777 /out/rootfs/tmp

# ---------------------------------------------------------------------------------------------
# Runtime stage: nothing but the binary and an empty /tmp. No shell, no libc, no package manager,
# no CA bundle or tzdata (the server needs none): the smallest possible attack surface.
FROM scratch

# One COPY of the directory's contents, which keeps each entry's mode. (`COPY /out/tmp /tmp`
# copies only what is inside /out/tmp and creates /tmp itself 0755: podman did, the first time
# a real engine built this file.) Everything is owned by root, COPY's default: the runtime user
# can write in /tmp but cannot replace its own binary.
COPY --from=build /out/rootfs/ /

# Numeric uid:gid because scratch has no /etc/passwd to look a name up in, and because
# Kubernetes' runAsNonRoot can only verify a numeric user. 65532 is the conventional "nonroot"
# id of distroless images; it must match runAsUser in deploy/kubernetes.yaml.
USER 65532:65532

# Documentation only (publishing is up to `docker run -p` / the Service): the default --port.
EXPOSE 8080

# SIGTERM starts the lame-duck ANNOUNCE phase and then the drain (see docs/design.md). This is the
# default already; it is stated so nobody "fixes" it to SIGINT, which skips the announce delay.
STOPSIGNAL SIGTERM

# For plain Docker / Compose / Swarm (Kubernetes ignores HEALTHCHECK and uses the livenessProbe
# in deploy/kubernetes.yaml instead). Exec form, because there is no shell to run a string in:
# `lameduck live` checks that the event loop refreshed its liveness file within --max-age
# (default 10s; the server touches it every 1s). Checking every 10s with 3 retries restarts a
# wedged loop within about 40s, and the 2s timeout is plenty for one stat(2).
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 CMD ["/lameduck", "live"]

# Exec form, so lameduck is PID 1 and receives the stop signal itself (a shell wrapper would
# swallow it). lameduck installs SIGTERM/SIGINT handlers, so PID 1's "no default signal action"
# rule does not bite; probes are started by the runtime, not by us, so there are no zombies to
# reap and no init (tini) is needed. Flags go after the image name or in LAMEDUCK_* env vars.
ENTRYPOINT ["/lameduck"]
CMD ["serve"]
