# syntax=docker/dockerfile:1
# The production image: `docker build -t idv-gateway .` (see README, "Docker and Kubernetes").
# Three stages: compile with the dev dependencies, install the production ones alone, and copy
# only what runs (dist/, schema/, production node_modules) into a slim image that runs as a
# non-root user.
# Node 24 LTS: Node 20 is past its end of life (no more security fixes), and the gateway needs
# 16-40 % less CPU per mutation on 24 in the benchmark (README, "Performance"). NODE_VERSION=20
# still builds.
ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The server only: the /demo page is never served in production, so Vite is not run here.
RUN npx tsc -p tsconfig.build.json

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
# --max-semi-space-size=16: V8's young generation as on Node 20 whichever Node the image has.
# Node 24's larger default took the gateway's peak RSS under load from ~235 MB to ~320 MB (over
# the Kubernetes limit) for no CPU saving measurable here (README, "Performance").
ENV NODE_ENV=production \
    PORT=4000 \
    NODE_OPTIONS=--max-semi-space-size=16
WORKDIR /app
# Owned by root and read-only to the app's user: nothing at run time writes here.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY schema ./schema
# The official image's unprivileged user (uid 1000).
USER node
EXPOSE 4000
# Liveness only: the process serves. Readiness (GET /readyz) is for the load balancer to ask.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node itself is PID 1 and handles SIGTERM/SIGINT/SIGHUP (graceful shutdown, from the moment node
# has loaded src/main.ts, ~0.15 s in); no npm in between, one process fewer. --no-memory-reducer: on Node 20, V8's memory reducer, run once the
# process goes quiet, left it cold for the next ~10 s of traffic (p50 ~100 ms, p99 ~650 ms at
# 300/s after 35 s idle; README, "Performance"). Not allowed in NODE_OPTIONS, hence here.
CMD ["node", "--no-memory-reducer", "dist/main.js"]
