# calo-polars as a one-shot job: audits /data.zip (or the /data folder) into /out and exits.
#   docker build -t calo-polars .
#   docker run --rm -v "$PWD/balance-sync-logs.zip:/data.zip:ro" -v "$PWD/reports:/out" calo-polars
# Two stages: the first builds wheels for the tool and its dependencies (with the s3 extra),
# the second installs only those wheels on a clean slim image, with no compiler and no source.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY calo_polars ./calo_polars
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[s3]"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 calo \
    && mkdir /out \
    && chown calo:calo /out
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels
USER 10001
WORKDIR /home/calo
# IN_DIR: the input; with several paths joined by ':' the first that exists is read,
# so mounting a zip at /data.zip or a folder at /data both work. OUT_DIR: the outputs.
ENV IN_DIR=/data.zip:/data \
    OUT_DIR=/out \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["calo-balance"]
CMD ["report"]
