# The tunnel broker as a small image: `docker build -t agentgather-broker .`
# Run it behind a TLS proxy (Caddy, HAProxy, nginx) on the same host network, e.g.
#   docker run -d --network host -v agentgather-broker:/var/lib/agentgather \
#     agentgather-broker --public-url https://rooms.example.com
# Keep --host 127.0.0.1 (the default here): the broker trusts X-Forwarded-For only from
# a proxy on its own machine. See docs/deploy-broker.md.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin agentgather \
    && strip target/release/agentgather

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/agentgather --create-home agentgather
COPY --from=build /src/target/release/agentgather /usr/local/bin/agentgather
USER agentgather
# The route key and the record of held slugs live here: keep it on a volume, and share
# the route key (--route-key-file) between the instances of one deployment.
ENV AGENTGATHER_HOME=/var/lib/agentgather
VOLUME ["/var/lib/agentgather"]
EXPOSE 8799 9799
STOPSIGNAL SIGTERM
ENTRYPOINT ["agentgather", "broker", "serve", "--host", "127.0.0.1", "--port", "8799", "--metrics-addr", "127.0.0.1:9799"]
