# Debian installs yaws outside OTP's lib directory; putting its ebin on the code
# path here makes it visible to compilation, `mix run` and `mix test` alike
# (ERL_LIBS=/usr/lib/yaws works too).
yaws_ebin = System.get_env("YAWS_EBIN", "/usr/lib/yaws/ebin")
if File.dir?(yaws_ebin), do: Code.append_path(yaws_ebin)

defmodule DevstralElixir.MixProject do
  use Mix.Project

  # No Hex registry is reachable here, so the project has no Hex dependencies:
  # it builds on OTP (Mnesia, inets, ssl, erl_tar) and Debian's yaws and jiffy,
  # which are found through ERL_LIBS (see the Makefile).
  def project do
    [
      app: :devstral_elixir,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      # yaws is started in embedded mode by DevstralElixir.Web.Server, not as a dependency.
      xref: [exclude: [:yaws_api]]
    ]
  end

  def application do
    [
      extra_applications: [:logger, :inets, :ssl, :public_key, :crypto, :mnesia, :eex, :jiffy],
      mod: {DevstralElixir.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
