defmodule DevstralElixir.Jobs.AdminTokenTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias DevstralElixir.Jobs.AdminToken

  defp name, do: :"admin_token_#{System.unique_integer([:positive])}"

  test "an explicit token is used as it is and nothing is written" do
    server = name()
    start_supervised!({AdminToken, name: server, token: "s3cret", data_dir: nil})
    assert AdminToken.get(server) == "s3cret"
    assert AdminToken.valid?("s3cret", server)
    refute AdminToken.valid?("s3cre", server)
    refute AdminToken.valid?(nil, server)
  end

  test "without a token one is generated, logged once and written 0600 for local tools" do
    dir = Path.join(System.tmp_dir!(), "devstral-token-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    server = name()

    log =
      capture_log(fn ->
        start_supervised!({AdminToken, name: server, token: "  ", data_dir: dir})
      end)

    token = AdminToken.get(server)
    assert byte_size(token) >= 32
    assert log =~ token
    assert File.read!(AdminToken.file(dir)) == token
    assert File.stat!(AdminToken.file(dir)).access == :read_write
    assert Bitwise.band(File.stat!(AdminToken.file(dir)).mode, 0o077) == 0

    if System.get_env("ADMIN_TOKEN") in [nil, ""], do: assert(AdminToken.for_client(dir) == token)
  end

  test "no holder running: no token, nothing is valid" do
    assert AdminToken.get(:no_such_token_server) == nil
    refute AdminToken.valid?("anything", :no_such_token_server)
  end
end
