# calo-polars as a one-shot job: audits /data.zip (or the /data folder) into /out and exits.
#   docker build -t calo-polars .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/balance-sync-logs.zip:/data.zip:ro" -v "$PWD/reports:/out" calo-polars
# (--user: the image runs as uid 10001, and on Linux a bind-mounted /out keeps its owner; docs/docker.md.)
# Two stages: the first (the full python image: it has gcc and the Python headers, for the
# tokenizer calo_polars/parse/_tokenize.c) installs the pinned dependencies (requirements.lock,
# with the s3 extra) and then calo-polars into a virtualenv; the second copies only that
# virtualenv onto a clean slim image: no compiler, no source, no wheel file, no pip cache in any layer.
# Offline: wheels/ holding every wheel of requirements.lock and setuptools (`make wheels`) makes
# the build install from it alone (pip --no-index), so `docker build --network none` works.

FROM python:3.11 AS build
WORKDIR /src
COPY requirements.lock pyproject.toml setup.py README.md ./
COPY calo_polars ./calo_polars
COPY wheels /wheels
# $offline is empty or one word (SC2086); ".[s3]" is this source, its dependencies pinned above (DL3013);
# the last check runs isolated (-I), so the source in /src cannot stand in for the installed package.
# hadolint ignore=SC2086,DL3013
RUN offline=""; if ls /wheels/*.whl >/dev/null 2>&1; then offline="--no-index"; fi \
    && python3 -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-cache-dir $offline --find-links /wheels --requirement requirements.lock \
    && pip --python /opt/venv/bin/python install --no-cache-dir $offline --find-links /wheels --no-deps ".[s3]" \
    && pip --python /opt/venv/bin/python check \
    && /opt/venv/bin/python -I -c "from calo_polars.parse import tokenize; assert tokenize.AVAILABLE, 'tokenizer not built'"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 calo \
    && mkdir /out \
    && chown calo:calo /out
COPY --from=build /opt/venv /opt/venv
USER 10001
WORKDIR /home/calo
# IN_DIR: the input; with several paths joined by ':' the first that exists is read,
# so mounting a zip at /data.zip or a folder at /data both work. OUT_DIR: the outputs.
ENV PATH=/opt/venv/bin:$PATH \
    IN_DIR=/data.zip:/data \
    OUT_DIR=/out \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["calo-balance"]
CMD ["report"]
