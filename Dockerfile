# syntax=docker/dockerfile:1
# The Spark RSI worker image (also the `spark` CLI). Dependencies come from requirements.lock
# (pinned, reproducible); the image runs as the unprivileged user `spark`.
#
# Build arguments:
#   EXTRA_PACKAGES  pip requirement specifiers installed into the image, e.g. your package of
#                   graph node modules: "my-nodes==1.4.0" or "my-nodes @ git+https://...".
#                   A worker can only run nodes whose modules it can import.
#   WITH_EXAMPLES   "true" adds examples/ and bench/ (the example graphs and benchmarks) and
#                   puts them on PYTHONPATH; "false" (default) ships neither.
# Or extend the image from your own package's Dockerfile (README, "Production"):
#   FROM spark-rsi-worker:local
#   USER root
#   COPY . /src/my-nodes
#   RUN pip install --no-cache-dir /src/my-nodes
#   USER spark
ARG PYTHON_VERSION=3.11
ARG WITH_EXAMPLES=false

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/spark \
    PATH=/opt/spark/bin:$PATH
RUN python -m venv /opt/spark \
    && groupadd --system --gid 10001 spark \
    && useradd --system --uid 10001 --gid spark --create-home --home-dir /home/spark spark
WORKDIR /app
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY spark ./spark
COPY activities ./activities
COPY workflows ./workflows
RUN pip install --no-deps . && rm -rf build ./*.egg-info

FROM base AS examples-false

FROM base AS examples-true
COPY examples ./examples
COPY bench ./bench
ENV PYTHONPATH=/app

FROM examples-${WITH_EXAMPLES} AS worker
ARG EXTRA_PACKAGES=""
RUN if [ -n "${EXTRA_PACKAGES}" ]; then pip install ${EXTRA_PACKAGES}; fi
USER spark
WORKDIR /home/spark
CMD ["spark-worker"]
