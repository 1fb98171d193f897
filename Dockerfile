# lsr: the service image (also runs the one-shot indexer). Built by docker-compose.yml; not built on the project's
# development machines, which have no Docker engine.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 NUMBA_CACHE_DIR=/home/lsr/.cache/numba
WORKDIR /app

# torch first, pinned like the Makefile; pass another spec (e.g. a CPU-only build) with --build-arg TORCH=...
ARG TORCH=torch==2.13.0
RUN pip install "${TORCH}"

# extras: "" for the service; "ray" for the ray profile's image
ARG EXTRAS=""
COPY pyproject.toml README.md ./
COPY lsr ./lsr
COPY index ./index
COPY service ./service
COPY eval ./eval
COPY cluster ./cluster
RUN pip install ".${EXTRAS:+[$EXTRAS]}"

RUN useradd --uid 10001 --create-home lsr && mkdir /index && chown lsr /index
USER lsr
EXPOSE 8000
ENTRYPOINT ["lsr"]
CMD ["serve", "--index", "/index", "--host", "0.0.0.0", "--port", "8000"]
