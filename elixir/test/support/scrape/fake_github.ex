defmodule DevstralElixir.Test.Scrape.FakeGitHub do
  @moduledoc """
  A fake GitHub API on `DevstralElixir.Test.Scrape.FakeServer`:
    * `GET /api/search/repositories?q=&sort=stars&order=desc&per_page=&page=`
      answers from the repositories matching the query's `stars:` range
      (`>=N` or `A..B`), most stars first, `total_count` counting them all
      but items only within the first `result_cap` (like GitHub's 1,000);
    * `GET /api/repos/OWNER/REPO/tarball/REF` redirects (302) to
      `http://localhost:PORT/codeload/...`, another host name, as GitHub
      redirects to codeload.github.com;
    * the codeload URL serves a `.tar.gz` with a pax global header and one
      top-level directory `OWNER-REPO-SHA/`.

  A repository is a map: `full_name`, `stars`, optionally `license` (an
  SPDX id or nil), `sha`, `entries` (tar entries relative to the top
  directory; default the sample files). Scripts (see
  `DevstralElixir.Test.Scrape.Scripts`) use the keys `:search`,
  `{:tarball, full_name}` and `{:codeload, full_name}`.
  """

  import ExUnit.Callbacks, only: [start_supervised!: 1]

  alias DevstralElixir.Test.Scrape.{FakeServer, HexFixtures, Scripts, TarBuilder}

  defstruct [:server, :state, :url, :api_url]

  @type t :: %__MODULE__{}

  @doc "Starts the fake for the calling test. Option: `result_cap` (default 1000)."
  @spec start([map()], keyword()) :: t()
  def start(repos, opts \\ []) do
    {:ok, state} =
      Agent.start_link(fn ->
        %{
          repos: Enum.map(repos, &normalize/1),
          scripts: %{},
          result_cap: Keyword.get(opts, :result_cap, 1000),
          port: nil
        }
      end)

    server = start_supervised!({FakeServer, &handle(state, &1)})
    port = FakeServer.port(server)
    Agent.update(state, &%{&1 | port: port})
    url = FakeServer.url(server)
    %__MODULE__{server: server, state: state, url: url, api_url: url <> "/api"}
  end

  @doc "Queues misbehaving responses for an endpoint."
  @spec script(t(), term(), [term()] | {:always, term()}) :: :ok
  def script(fake, key, responses),
    do: Agent.update(fake.state, &put_in(&1, [:scripts, key], responses))

  @doc "The requests received so far."
  @spec requests(t()) :: [FakeServer.request()]
  def requests(fake), do: FakeServer.requests(fake.server)

  defp normalize(repo) do
    repo
    |> Map.put_new(:license, "MIT")
    |> Map.put_new(
      :sha,
      :crypto.hash(:sha, repo.full_name) |> Base.encode16(case: :lower) |> binary_part(0, 7)
    )
    |> Map.put_new(:entries, HexFixtures.sample_entries())
    |> Map.put_new(:default_branch, "main")
  end

  defp handle(state, %{path: "/api/search/repositories", query: query}) do
    Scripts.respond(state, :search, fn -> search(state, query) end)
  end

  defp handle(state, %{path: "/api/repos/" <> rest}) do
    case String.split(rest, "/") do
      [owner, repo, "tarball" | ref_parts] when ref_parts != [] ->
        ref = Enum.join(ref_parts, "/")
        full = "#{owner}/#{repo}"

        Scripts.respond(state, {:tarball, full}, fn ->
          with_repo(state, full, fn _ ->
            port = Agent.get(state, & &1.port)
            location = "http://localhost:#{port}/codeload/#{full}/legacy.tar.gz/refs/heads/#{ref}"
            {302, [{"location", location} | Scripts.rate_headers()], ""}
          end)
        end)

      _ ->
        Scripts.not_found()
    end
  end

  defp handle(state, %{path: "/codeload/" <> rest}) do
    case String.split(rest, "/") do
      [owner, repo | _] ->
        full = "#{owner}/#{repo}"

        Scripts.respond(state, {:codeload, full}, fn ->
          with_repo(state, full, fn r ->
            top = "#{owner}-#{repo}-#{r.sha}/"
            entries = Enum.map(r.entries, &prefix(&1, top))
            body = TarBuilder.tgz([{:pax_global, "52 comment=#{r.sha}"}, {:dir, top} | entries])
            {200, [{"content-type", "application/x-gzip"}], body}
          end)
        end)

      _ ->
        Scripts.not_found()
    end
  end

  defp handle(_state, _request), do: Scripts.not_found()

  defp prefix({:file, name, content}, top), do: {:file, top <> name, content}
  defp prefix({:symlink, name, target}, top), do: {:symlink, top <> name, target}
  defp prefix({:dir, name}, top), do: {:dir, top <> name}
  defp prefix({:raw_file, name, content}, _top), do: {:file, name, content}

  defp search(state, query) do
    %{repos: repos, result_cap: cap} = Agent.get(state, & &1)
    per_page = String.to_integer(query["per_page"] || "30")
    page = String.to_integer(query["page"] || "1")
    q = query["q"] || ""

    unless q =~ "language:Elixir" and q =~ "fork:false" and q =~ "archived:false" and
             q =~ ~r/pushed:>\d{4}-\d\d-\d\d/,
           do: raise("unexpected query #{q}")

    matching = repos |> Enum.filter(&in_range?(&1.stars, q)) |> Enum.sort_by(& &1.stars, :desc)
    visible = Enum.take(matching, cap)

    items =
      visible |> Enum.drop((page - 1) * per_page) |> Enum.take(per_page) |> Enum.map(&item/1)

    Scripts.json(200, %{
      "total_count" => length(matching),
      "incomplete_results" => false,
      "items" => items
    })
  end

  defp in_range?(stars, q) do
    case Regex.run(~r/stars:(?:>=(\d+)|(\d+)\.\.(\d+))/, q) do
      [_, min] -> stars >= String.to_integer(min)
      [_, "", lo, hi] -> stars >= String.to_integer(lo) and stars <= String.to_integer(hi)
    end
  end

  defp item(repo) do
    [owner, name] = String.split(repo.full_name, "/")

    %{
      "full_name" => repo.full_name,
      "name" => name,
      "owner" => %{"login" => owner},
      "html_url" => "https://github.com/#{repo.full_name}",
      "description" => "The #{name} repository.",
      "stargazers_count" => repo.stars,
      "default_branch" => repo.default_branch,
      "fork" => false,
      "archived" => false,
      "pushed_at" => "2024-06-01T00:00:00Z",
      "license" =>
        if(repo.license, do: %{"spdx_id" => repo.license, "key" => String.downcase(repo.license)})
    }
  end

  defp with_repo(state, full, fun) do
    case Enum.find(Agent.get(state, & &1.repos), &(&1.full_name == full)) do
      nil -> Scripts.not_found()
      repo -> fun.(repo)
    end
  end
end
