# Builds the folio binary and packs it into a small runtime image that runs as a
# non-root user. `docker build -t folio .` then `docker run folio up` (the default),
# `folio accounts` or `folio reporting`; docker-compose.yml runs the latter two.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src

# Dependencies first, built against stub sources, so that a change to Folio's own
# code does not rebuild every crate from crates.io.
COPY Cargo.toml Cargo.lock ./
# sqlx-core with TCP_NODELAY, patched in by Cargo.toml (vendor/README.md).
COPY vendor vendor
COPY ledger/Cargo.toml ledger/
# platform's build script fetches GraphiQL from the npm registry: here, so that the
# download is cached with the dependencies.
COPY platform/Cargo.toml platform/build.rs platform/
COPY accounts/Cargo.toml accounts/
COPY reporting/Cargo.toml reporting/
RUN mkdir -p src benches ledger/src platform/src accounts/src reporting/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > benches/platform.rs \
    && touch ledger/src/lib.rs platform/src/lib.rs accounts/src/lib.rs reporting/src/lib.rs \
    && cargo build --release --locked --bin folio \
    && rm -rf src benches ledger/src platform/src accounts/src reporting/src

# Then the workspace itself. The migrations are embedded in the binary at compile time.
COPY src src
COPY benches benches
COPY ledger ledger
COPY platform platform
COPY accounts accounts
COPY reporting reporting
COPY migrations migrations
COPY tests tests
# COPY keeps the files' own times, which may be older than the stubs': touch them so
# that cargo rebuilds Folio's crates from the real sources.
RUN find src benches ledger platform accounts reporting -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin folio \
    && cp target/release/folio /usr/local/bin/folio


FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --no-create-home --shell /usr/sbin/nologin folio
COPY --from=builder /usr/local/bin/folio /usr/local/bin/folio
USER folio
ENV FOLIO_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["folio"]
CMD ["up"]
