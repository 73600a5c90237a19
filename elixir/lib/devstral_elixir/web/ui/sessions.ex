defmodule DevstralElixir.Web.UI.Sessions do
  @moduledoc """
  The web UI's login sessions and CSRF tokens.

  A session is a random id (the `devstral_session` cookie) mapped, in an ETS
  table this process owns, to a role (`:admin` or `:user`) and an expiry.
  Sessions live in memory: a host restart logs everyone out, which is also
  when a generated admin token changes.

  A CSRF token is an HMAC of the browser id (the `devstral_browser` cookie)
  under a secret made at start, so it needs no storage, and a page from
  another origin can neither read it nor compute it.
  """
  use GenServer

  @table __MODULE__
  @ttl_s 12 * 3600

  @type role :: :admin | :user

  # Public API

  @doc "Starts the session table (one per node, named after this module)."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    Keyword.validate!(opts, [])
    GenServer.start_link(__MODULE__, nil, name: __MODULE__)
  end

  @doc "A new session for `role`; returns its id (the cookie value)."
  @spec create(role()) :: String.t()
  def create(role) when role in [:admin, :user] do
    id = random_id()
    :ets.insert(@table, {id, role, System.monotonic_time(:second) + @ttl_s})
    id
  end

  @doc "The role of a live session, or nil (unknown, expired, or the table is not running)."
  @spec role(String.t() | nil) :: role() | nil
  def role(nil), do: nil

  def role(id) when is_binary(id) do
    case :ets.lookup(@table, id) do
      [{^id, role, expires}] ->
        if System.monotonic_time(:second) < expires, do: role, else: delete(id) && nil

      [] ->
        nil
    end
  rescue
    ArgumentError -> nil
  end

  @doc "Ends a session."
  @spec delete(String.t() | nil) :: true
  def delete(nil), do: true

  def delete(id) do
    :ets.delete(@table, id)
  rescue
    ArgumentError -> true
  end

  @doc "The CSRF token of a browser id."
  @spec csrf_token(String.t()) :: String.t()
  def csrf_token(browser_id) when is_binary(browser_id) do
    :crypto.mac(:hmac, :sha256, secret(), "csrf:" <> browser_id)
    |> Base.url_encode64(padding: false)
  end

  @doc "True when `given` is the CSRF token of `browser_id` (constant-time compare)."
  @spec valid_csrf?(String.t() | nil, String.t() | nil) :: boolean()
  def valid_csrf?(given, browser_id) when is_binary(given) and is_binary(browser_id) do
    expected = csrf_token(browser_id)
    byte_size(given) == byte_size(expected) and :crypto.hash_equals(given, expected)
  end

  def valid_csrf?(_given, _browser_id), do: false

  @doc "A fresh random id (sessions, browser ids)."
  @spec random_id() :: String.t()
  def random_id, do: Base.url_encode64(:crypto.strong_rand_bytes(24), padding: false)

  # The secret is made once per VM; before the server runs (tests), on first use.
  defp secret do
    case :persistent_term.get({__MODULE__, :secret}, nil) do
      nil ->
        secret = :crypto.strong_rand_bytes(32)
        :persistent_term.put({__MODULE__, :secret}, secret)
        secret

      secret ->
        secret
    end
  end

  # Callbacks

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
    _ = secret()
    {:ok, nil}
  end
end
