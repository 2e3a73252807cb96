# One-shot audit job: reads /data.zip (IN_DIR), writes /out (OUT_DIR).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY calo_polars ./calo_polars
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 calo
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER calo
ENV IN_DIR=/data.zip OUT_DIR=/out
ENTRYPOINT ["calo-balance"]
CMD ["report"]
