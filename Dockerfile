# STACKL control plane image (stackl serve / stackl worker). Built on a machine with a Docker engine:
#   docker build -t stackl .
#   docker run -p 7443:7443 -e STACKL_HOST=0.0.0.0 -e STACKL_DATABASE_URL=… -e STACKL_NATS_URL=… stackl serve
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build:agent && npm prune --omit=dev

FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/bin ./bin
COPY --from=build /app/src ./src
COPY --from=build /app/gen ./gen
COPY --from=build /app/dist/stackl-agent ./dist/stackl-agent
ENV STACKL_HOST=0.0.0.0
EXPOSE 7443
# Health: grpc.health.v1 on the same port, or GET /healthz.
ENTRYPOINT ["/nodejs/bin/node", "bin/stackl.js"]
CMD ["serve"]
