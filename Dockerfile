FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY spark ./spark
COPY activities ./activities
COPY workflows ./workflows
COPY examples ./examples
COPY bench ./bench
COPY worker.py ./
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
CMD ["python", "worker.py"]
