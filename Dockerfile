# One image for every dosewise service; docker-compose.yml picks the command.
# The build stage turns dosewise and its runtime dependencies (pinned by requirements.lock) into
# wheels; the image installs only those, so no test or lint tool is in it, and runs as a user
# without privileges.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY i18n i18n
COPY schemas schemas
COPY planner planner
COPY store store
COPY services services
COPY scheduler scheduler
COPY notifier notifier
COPY tracker tracker
COPY reports reports
COPY dosewise dosewise
RUN pip wheel --no-cache-dir --constraint requirements.lock --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels dosewise \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 dosewise
USER dosewise
WORKDIR /home/dosewise
ENTRYPOINT ["dosewise"]
CMD ["--help"]
