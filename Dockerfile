FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONFIG_PATH=/app/config.yaml

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER, and
# deploy/k8s sets runAsUser/fsGroup to the same 10001.
RUN groupadd --system --gid 10001 collector \
    && useradd --system --uid 10001 --gid collector --home /app collector

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY core/ core/
COPY supervisor/ supervisor/
COPY worker/ worker/
COPY config.yaml entrypoint.sh ./
RUN mkdir -p /app/data && chown collector:collector /app/data

USER 10001:10001
VOLUME ["/app/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["/app/entrypoint.sh"]
CMD ["--mode", "live"]
