import Config

# Runtime settings (MODEL, HTTP_PORT, GRPC_PORT, DATA_DIR, ...) are read from the
# environment at start by DevstralElixir.Config; nothing here duplicates them.
#
# `start_services` controls whether the application boots the Python worker and
# the HTTP server. Tests start those parts themselves, under their own names.
config :devstral_elixir, start_services: config_env() != :test

config :logger, :console, format: "$time [$level] $message\n"

if config_env() == :test do
  config :logger, level: :warning
end
