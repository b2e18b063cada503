# imagegen container image: one binary that runs `serve` (default), `worker` or `submit`.
#
#   docker build -t imagegen .
#   docker run -p 8080:8080 imagegen                                   # HTTP service
#   docker run imagegen worker --queue "$SQS_QUEUE_URL" --store s3://bucket/prefix
#   docker run imagegen submit "a red circle" --queue "$SQS_QUEUE_URL"
#
# Build arguments:
#   BASE_IMAGE           Debian 12 base of both stages (tests build it from a local debootstrap)
#   JOBS                 parallel compile jobs
#   IMAGEGEN_TEST_MODEL  ON adds the deterministic `--model test` (tests only; OFF for releases)
ARG BASE_IMAGE=debian:bookworm-slim

# --- build stage: toolchain, LibTorch and the other -dev packages; none of it ships ----------
FROM ${BASE_IMAGE} AS build
ARG JOBS=2
ARG IMAGEGEN_TEST_MODEL=OFF
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# The package list lives in one place (scripts/setup.sh); this layer is cached until it changes.
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
# Warnings are errors in development builds; a release build must not fail on GCC 12's -O3
# false positives (-Wrestrict in std::string, GCC bug 105329).
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DIMAGEGEN_WERROR=OFF \
      -DIMAGEGEN_TEST_MODEL=${IMAGEGEN_TEST_MODEL} -DIMAGEGEN_BUILD_TESTS=OFF \
 && ninja -C /build -j "${JOBS}" imagegen \
 && strip --strip-unneeded /build/imagegen
# Exactly the shared libraries the binary loads (LibTorch, OpenBLAS, curl, ...), found by ldd,
# minus the C/C++ runtime the base image already has; and the bundled model when present.
RUN mkdir -p /out/lib /out/models \
 && cp /build/imagegen /out/imagegen \
 && ldd /build/imagegen | awk '/=> \// {print $3}' \
    | grep -Ev '/(libc|libm|libpthread|libdl|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' \
    | xargs -r -I{} cp -L {} /out/lib/ \
 && if [ -d models ]; then cp -r models/. /out/models/; fi

# --- runtime stage: the binary, its libraries, the model, CA certificates -----------------
FROM ${BASE_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/imagegen --create-home \
      --shell /usr/sbin/nologin imagegen
COPY --from=build /out/lib/ /usr/local/lib/imagegen/
RUN echo /usr/local/lib/imagegen > /etc/ld.so.conf.d/imagegen.conf && ldconfig
COPY --from=build /out/imagegen /usr/local/bin/imagegen
# DefaultLocalModelPath() looks in /usr/share/imagegen/models/local.
COPY --from=build /out/models/ /usr/share/imagegen/models/

USER 10001:10001
WORKDIR /var/lib/imagegen
# Embedded defaults, inside the image's writable home; mount a volume at /var/lib/imagegen/data
# to keep them. They are baked under the IMAGEGEN_DEFAULT_* names, which rank below everything a
# deployment passes: BUCKET_NAME / SQS_QUEUE_URL (or IMAGEGEN_STORE / IMAGEGEN_QUEUE) given to
# the container always win, so a job is never written to a local file in their place.
ENV IMAGEGEN_DEFAULT_STORE=file:///var/lib/imagegen/data/images \
    IMAGEGEN_DEFAULT_QUEUE=sqlite:///var/lib/imagegen/data/queue.db \
    IMAGEGEN_HEALTH_PORT=8080
EXPOSE 8080
# GET /healthz on the serve port (a worker answers it on --metrics-port; set
# IMAGEGEN_HEALTH_PORT to that port). bash's /dev/tcp: no curl needed in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${IMAGEGEN_HEALTH_PORT} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["imagegen"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
