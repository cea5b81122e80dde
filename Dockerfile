# syntax=docker/dockerfile:1
# Build stage: install everything, compile TypeScript, then keep production dependencies only.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: Node 20 on distroless-like slim Debian, non-root, read-only root filesystem friendly.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
USER 65532:65532
# Node handles SIGTERM itself (alcazar releases its Lease and exits); it runs as PID 1 via exec form.
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["controller"]
