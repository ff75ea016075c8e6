# One image for every dosewise service; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
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
RUN pip install --no-cache-dir --no-deps . && useradd --create-home dosewise
USER dosewise
ENTRYPOINT ["dosewise"]
CMD ["--help"]
