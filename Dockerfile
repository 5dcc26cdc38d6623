# One image for every process of the system: workers, beat, migrations.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY baitiao ./baitiao
RUN pip install --no-cache-dir . && useradd --create-home baitiao
USER baitiao
ENTRYPOINT ["baitiao"]
CMD ["--help"]
