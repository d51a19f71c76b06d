# syntax=docker/dockerfile:1
# The dashboard: web/dist served by an unprivileged nginx with the page's
# Content-Security-Policy and /config.json, both made from the environment at start-up:
#   DASHBOARD_INVESTMENT_URL, DASHBOARD_ALLOCATION_URL   e.g. https://invest.example.com:50051
#   docker build -f deploy/dashboard.Dockerfile -t invest-dashboard:dev .

ARG NODE_VERSION=22.12.0

FROM node:${NODE_VERSION}-bookworm-slim AS builder
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# Runs as uid 101 and listens on 8080; the official entrypoint renders
# /etc/nginx/templates/*.template with envsubst into /etc/nginx/conf.d.
FROM nginxinc/nginx-unprivileged:1.28.0-alpine
COPY --from=builder /web/dist/ /usr/share/nginx/html/
COPY deploy/dashboard/default.conf.template /etc/nginx/templates/default.conf.template
ENV DASHBOARD_INVESTMENT_URL=http://127.0.0.1:50051 \
    DASHBOARD_ALLOCATION_URL=http://127.0.0.1:50052 \
    NGINX_ENVSUBST_FILTER=^DASHBOARD_
USER 101
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
