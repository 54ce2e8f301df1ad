# syntax=docker/dockerfile:1
# The chat's images, one stage each over a shared base; compose.yml and compose.cluster.yml pick them
# with `build: {context: ., target: <stage>}`. Build one from the repository root:
#
#   docker build --target api -t moderated-chat/api .
#
#   api      the HTTP API under gunicorn (conf/gunicorn.conf.py)
#   topics   one-shot: creates the Kafka topics, idempotently (python -m stack.topics)
#   ui       the Shiny web UI under uvicorn; it talks to the API only (CHAT_API_URL)
#   streams  the Spark streaming jobs, relay and ledger (python -m pipelines.streams); compose.cluster.yml
#            also runs the Spark standalone master and workers from it (`spark-class`, on PATH with pyspark)
#
# Each stage installs its own dependency group of pyproject.toml, from that file alone (so editing the
# code does not reinstall them), then copies only the packages its service imports. The code runs from
# /app on PYTHONPATH, as `make up` runs it from the repository: nothing is downloaded at run time.

FROM python:3.11-slim-bookworm AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    CHAT_DATA_DIR=/data
WORKDIR /app
# pip installs dependency groups (`--group`) from 25.1 on.
# /data and /warehouse: mount points of named volumes, which take this ownership when fresh.
RUN pip install pip==26.3 \
 && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin app \
 && mkdir -p /data /warehouse \
 && chown app:app /app /data /warehouse
COPY pyproject.toml ./


FROM base AS api
RUN pip install --group api
COPY config ./config
COPY warehouse ./warehouse
COPY api ./api
COPY conf/gunicorn.conf.py ./conf/gunicorn.conf.py
# inside the container: compose publishes the port on the host's loopback only
ENV CHAT_API_HOST=0.0.0.0 \
    CHAT_API_PORT=5000
USER app
EXPOSE 5000
# The healthcheck (GET /health) lives in the compose files.
CMD ["gunicorn", "-c", "conf/gunicorn.conf.py"]


FROM base AS topics
RUN pip install --group kafka
COPY config ./config
COPY stack ./stack
USER app
CMD ["python", "-m", "stack.topics"]


FROM base AS ui
RUN pip install --group ui
COPY config ./config
COPY ui ./ui
ENV CHAT_API_URL=http://api:5000
USER app
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "ui.app:app", "--host", "0.0.0.0", "--port", "8000"]


# Build-time only: Maven resolves Spark's Kafka connector and Delta Lake from conf/pom.xml alone, into
# ${project.basedir}/../var/jars/spark = /app/var/jars/spark, and Hadoop's S3A client with its AWS SDK modules
# into var/jars/s3 (loaded only for s3a:// locations); the streams stage copies the jars, not Maven.
FROM base AS jars
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends maven \
 && rm -rf /var/lib/apt/lists/*
COPY conf/pom.xml ./conf/pom.xml
RUN mvn -q -B -f conf/pom.xml -Dmaven.repo.local=/app/var/m2 -Pspark package \
 && mvn -q -B -f conf/pom.xml -Dmaven.repo.local=/app/var/m2 -Ps3 package \
 && ls /app/var/jars/spark/*.jar /app/var/jars/s3/*.jar > /dev/null


FROM base AS streams
# Java for Spark (pyspark runs `java` from PATH); procps because Spark's launch scripts call `ps`.
# (man1 must exist or the JRE's postinst fails on slim images.)
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --group pipelines
COPY --from=jars /app/var/jars/spark ./var/jars/spark
COPY --from=jars /app/var/jars/s3 ./var/jars/s3
COPY config ./config
COPY warehouse ./warehouse
COPY pipelines ./pipelines
COPY conf ./conf
ENV CHAT_SPARK_MASTER="local[*]" \
    SPARK_CONF_DIR=/app/conf \
    CHAT_JARS_DIR=/app/var/jars
# /app stays writable: Spark may drop spark-warehouse/ or derby.log in its working directory
USER app
# 4040: the driver's web UI (the health check); 7077, 8080, 8081: a standalone master, its UI, a worker's UI
EXPOSE 4040 7077 8080 8081
CMD ["python", "-m", "pipelines.streams"]
