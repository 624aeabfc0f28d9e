#!/usr/bin/env bash
# Starts a Kafka-protocol broker on 127.0.0.1:9092 for the Kafka connector's live tests
# (`KNHK_TEST_KAFKA=127.0.0.1:9092 cargo nextest run -p knhk-connectors kafka`).
#
# The broker is tansu (https://crates.io/crates/tansu), a Kafka-compatible broker in Rust, with
# its in-memory storage: nothing outlives it. The script installs tansu when it is missing
# (`cargo install`, about 13 minutes on 2 cores) and starts it in the background. It is
# idempotent: a broker already answering on the port is left as it is.
#
# Environment:
#   TANSU_ROOT   where tansu is installed (`cargo install --root`); default: cargo's own root
#   KAFKA_PORT   the port to listen on; default 9092
#   TANSU_LOG    the broker's log file; default ${TMPDIR:-/tmp}/knhk-tansu.log
set -euo pipefail

root=${TANSU_ROOT:-${CARGO_HOME:-$HOME/.cargo}}
port=${KAFKA_PORT:-9092}
log=${TANSU_LOG:-${TMPDIR:-/tmp}/knhk-tansu.log}
addr=127.0.0.1:$port

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if answers; then
	echo "kafka-broker: a broker already answers on $addr"
	exit 0
fi

tansu=$root/bin/tansu
if [ ! -x "$tansu" ]; then
	if command -v tansu >/dev/null; then
		tansu=$(command -v tansu)
	else
		echo "kafka-broker: installing tansu into $root (about 13 minutes on 2 cores)"
		cargo install tansu --locked --features dynostore --root "$root"
	fi
fi

echo "kafka-broker: starting $tansu on $addr (log: $log)"
nohup "$tansu" broker \
	--listener-url "tcp://$addr" \
	--advertised-listener-url "tcp://$addr" \
	--storage-engine memory://tansu/ >"$log" 2>&1 &
pid=$!

# Waits for the port, at most 30 s, and gives up early if the broker exits.
for _ in $(seq 1 300); do
	if answers; then
		echo "kafka-broker: tansu (pid $pid) answers on $addr; export KNHK_TEST_KAFKA=$addr"
		exit 0
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "kafka-broker: tansu exited; see $log" >&2
		tail -n 20 "$log" >&2 || true
		exit 1
	fi
	sleep 0.1
done
echo "kafka-broker: tansu did not answer on $addr within 30 s; see $log" >&2
exit 1
