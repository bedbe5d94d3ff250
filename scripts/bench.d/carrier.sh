# The bench's synthetic carrier, for scripts/bench and scripts/instructions (sourced): one config, one way to make
# the store and its two administrators, one way to set the carrier up, so the figures of the two scripts are of
# the same carrier.

# Risk thresholds raised so that no bench account is ever contained: the engine still assesses every read.
RISK_TOML='
[risk.rate_limit]
reads_per_minute = 1000000000
burst = 1000000000
[risk.score.burst]
alert = 1e15
mask = 1e15
suspend = 1e15
[risk.score.drift]
alert = 1e15
mask = 1e15
suspend = 1e15'

# carrier_init BIN ARGS...: makes the store (`init` with ARGS: --config, --data, --keys) and two administrators,
# root and root2; sets `admin` and `approver` to their tokens (declare them `local` first to keep them local).
carrier_init() {
  local bin="$1"; shift
  "$bin" init "$@" >/dev/null
  admin="$("$bin" accounts create --id root --role admin "$@" | tail -n 1)"
  approver="$("$bin" accounts create --id root2 --role admin "$@" | tail -n 1)"
}

# carrier_drive BIN URLS TARGETS: sets the carrier up through the nodes at URLS (comma-separated) with
# `wbguard drive` (67 outlets, 201 couriers, 30 parcels each out for delivery) and writes the load's targets to
# TARGETS. Needs `admin` and `approver` from carrier_init.
carrier_drive() {
  WBGUARD_ADMIN_TOKEN="$admin" WBGUARD_APPROVER_TOKEN="$approver" "$1" drive --nodes "$2" --outlets 67 \
    --parcels 30 --no-attack --targets "$3" >/dev/null
}
