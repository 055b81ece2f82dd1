# The Kafka gateway's image (infra/kafka.py builds it at `cdk deploy`; not built in CI:
# there is no Docker daemon there). The build context is the repository root.
FROM public.ecr.aws/docker/library/python:3.13-slim
WORKDIR /src
COPY sdk /src/sdk
COPY functions /src/functions
RUN pip install --no-cache-dir "/src/sdk[kafka,cli]" && rm -rf /src
RUN useradd --uid 10001 --no-create-home gateway
USER 10001
ENTRYPOINT ["streamlet"]
