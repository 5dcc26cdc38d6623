# One image for every process of the system: workers, beat, migrations, the command line.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BAITIAO_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
COPY baitiao ./baitiao
# The versions the tests ran with (constraints.txt), and a data directory the unprivileged
# user owns: a named volume mounted on /data starts as a copy of it, ownership included.
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --create-home --uid 10001 baitiao \
 && mkdir -p /data && chown baitiao:baitiao /data
USER baitiao
VOLUME ["/data"]
ENTRYPOINT ["baitiao"]
CMD ["--help"]
