defmodule DevstralElixir.Test.Scrape.FakeHex do
  @moduledoc """
  A fake Hex.pm on `DevstralElixir.Test.Scrape.FakeServer`, speaking the
  real formats: `GET /api/packages?sort=&page=` (JSON list with an ETag,
  304 on `If-None-Match`), `GET /api/packages/NAME`,
  `GET /api/packages/NAME/releases/VERSION` (with the tarball `checksum`),
  and `GET /repo/tarballs/NAME-VERSION.tar`. Every JSON answer carries
  `x-ratelimit-*` headers.

  A package is a map: `name`, `releases` (maps with `version`, `tarball`
  and optionally `checksum`, `retirement`), and optionally `licenses`,
  `downloads`, `updated_at`.

  Scripts make an endpoint misbehave: `script(fake, key, responses)` queues
  responses used one per request before the normal answer, with keys
  `{:package, name}`, `{:release, name, version}`, `{:tarball, name, version}`
  and `:listing`; see `DevstralElixir.Test.Scrape.Scripts` for the responses. Tarball requests of the names in
  the `gated` option wait until `open_gate/1`.
  """

  import ExUnit.Callbacks, only: [start_supervised!: 1]

  alias DevstralElixir.Test.Scrape.{FakeServer, HexFixtures, Scripts}

  defstruct [:server, :state, :url, :api_url, :repo_url]

  @type t :: %__MODULE__{}

  @doc "Starts a fake Hex for the calling test. Options: `page_size` (default 100), `gated` (names)."
  @spec start([map()], keyword()) :: t()
  def start(packages, opts \\ []) do
    {:ok, state} =
      Agent.start_link(fn ->
        %{
          packages: Enum.map(packages, &normalize/1),
          scripts: %{},
          page_size: Keyword.get(opts, :page_size, 100),
          gated: MapSet.new(Keyword.get(opts, :gated, [])),
          gate: :closed,
          waiters: []
        }
      end)

    server = start_supervised!({FakeServer, &handle(state, &1)})
    url = FakeServer.url(server)

    %__MODULE__{
      server: server,
      state: state,
      url: url,
      api_url: url <> "/api",
      repo_url: url <> "/repo"
    }
  end

  @doc "A package spec with one release of the sample tarball (tarball options as in `HexFixtures.tarball/3`)."
  @spec package(String.t(), String.t(), keyword()) :: map()
  def package(name, version, opts \\ []) do
    tarball = HexFixtures.tarball(name, version, opts)

    %{
      name: name,
      licenses: Keyword.get(opts, :licenses, ["MIT"]),
      releases: [%{version: version, tarball: tarball}]
    }
  end

  @doc "Queues misbehaving responses for an endpoint."
  @spec script(t(), term(), [term()] | {:always, term()}) :: :ok
  def script(fake, key, responses),
    do: Agent.update(fake.state, &put_in(&1, [:scripts, key], responses))

  @doc "Lets the gated tarball requests through, now and from now on."
  @spec open_gate(t()) :: :ok
  def open_gate(fake) do
    waiters =
      Agent.get_and_update(fake.state, fn s -> {s.waiters, %{s | gate: :open, waiters: []}} end)

    Enum.each(waiters, &send(&1, :gate_open))
  end

  @doc "The requests received so far."
  @spec requests(t()) :: [FakeServer.request()]
  def requests(fake), do: FakeServer.requests(fake.server)

  ## Requests

  defp handle(state, %{path: "/api/packages"} = request) do
    scripted(state, :listing, fn -> listing(state, request) end)
  end

  defp handle(state, %{path: "/api/packages/" <> rest}) do
    case String.split(rest, "/") do
      [name] ->
        scripted(state, {:package, name}, fn ->
          with_package(state, name, &json(200, package_json(&1, true)))
        end)

      [name, "releases", version] ->
        scripted(state, {:release, name, version}, fn ->
          with_release(state, name, version, fn _package, release ->
            json(200, release_json(release))
          end)
        end)

      _ ->
        not_found()
    end
  end

  defp handle(state, %{path: "/repo/tarballs/" <> file}) do
    with [name, version] <- String.split(String.trim_trailing(file, ".tar"), "-", parts: 2) do
      scripted(state, {:tarball, name, version}, fn ->
        await_gate(state, name)

        with_release(state, name, version, fn _package, release ->
          {200, [{"content-type", "application/octet-stream"}], release.tarball}
        end)
      end)
    else
      _ -> not_found()
    end
  end

  defp handle(_state, _request), do: not_found()

  defp listing(state, request) do
    %{packages: packages, page_size: size} = Agent.get(state, & &1)
    page = String.to_integer(Map.get(request.query, "page", "1"))

    body =
      packages
      |> Enum.drop((page - 1) * size)
      |> Enum.take(size)
      |> Enum.map(&package_json(&1, false))

    encoded = IO.iodata_to_binary(:jiffy.encode(body, [:use_nil]))
    etag = ~s("#{Base.encode16(:crypto.hash(:md5, encoded), case: :lower)}")

    if request.headers["if-none-match"] == etag,
      do: {304, [{"etag", etag} | rate_headers()], ""},
      else:
        {200,
         [{"content-type", "application/json; charset=utf-8"}, {"etag", etag} | rate_headers()],
         encoded}
  end

  defp package_json(package, full?) do
    releases =
      Enum.map(
        package.releases,
        &%{
          "version" => &1.version,
          "url" => "/api/packages/#{package.name}/releases/#{&1.version}"
        }
      )

    stable =
      package.releases
      |> Enum.map(& &1.version)
      |> Enum.filter(&(Version.parse!(&1).pre == []))
      |> Enum.max_by(&Version.parse!/1, Version, fn -> nil end)

    base = %{
      "name" => package.name,
      "meta" => %{
        "licenses" => package.licenses,
        "description" => "The #{package.name} package.",
        "links" => %{"GitHub" => "https://github.com/example/#{package.name}"}
      },
      "downloads" => %{"all" => package.downloads, "recent" => div(package.downloads, 10)},
      "latest_stable_version" => stable,
      "latest_version" => stable,
      "releases" => releases,
      "updated_at" => package.updated_at,
      "inserted_at" => "2020-01-01T00:00:00.000000Z",
      "html_url" => "https://hex.pm/packages/#{package.name}"
    }

    if full? do
      retirements =
        for %{retirement: r, version: v} when r != nil <- package.releases, into: %{}, do: {v, r}

      Map.put(base, "retirements", retirements)
    else
      base
    end
  end

  defp release_json(release) do
    %{
      "version" => release.version,
      "checksum" => release[:checksum] || HexFixtures.checksum(release.tarball),
      "retirement" => release[:retirement],
      "requirements" => %{
        "jason" => %{"app" => "jason", "optional" => false, "requirement" => "~> 1.0"}
      },
      "inserted_at" => "2024-01-01T00:00:00.000000Z"
    }
  end

  defp normalize(package) do
    package
    |> Map.put_new(:licenses, ["MIT"])
    |> Map.put_new(:downloads, 1_000)
    |> Map.put_new(:updated_at, "2024-06-01T00:00:00.000000Z")
    |> Map.update!(:releases, fn releases ->
      Enum.map(releases, &Map.put_new(&1, :retirement, nil))
    end)
  end

  defp with_package(state, name, fun) do
    case Enum.find(Agent.get(state, & &1.packages), &(&1.name == name)) do
      nil -> not_found()
      package -> fun.(package)
    end
  end

  defp with_release(state, name, version, fun) do
    with_package(state, name, fn package ->
      case Enum.find(package.releases, &(&1.version == version)) do
        nil -> not_found()
        release -> fun.(package, release)
      end
    end)
  end

  defp scripted(state, key, normal), do: Scripts.respond(state, key, normal)

  defp await_gate(state, name) do
    me = self()

    wait? =
      Agent.get_and_update(state, fn s ->
        if s.gate == :closed and MapSet.member?(s.gated, name),
          do: {true, %{s | waiters: [me | s.waiters]}},
          else: {false, s}
      end)

    if wait?, do: receive(do: (:gate_open -> :ok))
  end

  defp json(status, term), do: Scripts.json(status, term)
  defp rate_headers, do: Scripts.rate_headers()
  defp not_found, do: Scripts.not_found()
end
