defmodule DevstralElixir.Scrape.GitHub.Search do
  @moduledoc """
  Finds repositories with the GitHub search API:
  `GET {api}/search/repositories?q=QUERY&sort=stars&order=desc&per_page=100&page=N`
  with `QUERY = language:Elixir stars:RANGE fork:false archived:false pushed:>DATE`.

  A query yields at most 1,000 results (`result_cap`), so when the total is
  larger the star range is halved, recursively, until each part fits (a
  single star count that still has more is read to the cap, with a warning).
  Ranges are read from most to fewest stars, and reading stops at `limit`.
  """

  require Logger

  alias DevstralElixir.Scrape.Http

  @doc "The search query for a star range (`{lo, nil}` means `>=lo`)."
  @spec query({non_neg_integer(), non_neg_integer() | nil}, Date.t()) :: String.t()
  def query({lo, hi}, pushed_since) do
    stars = if hi, do: "#{lo}..#{hi}", else: ">=#{lo}"

    "language:Elixir stars:#{stars} fork:false archived:false pushed:>#{Date.to_iso8601(pushed_since)}"
  end

  @doc """
  The repositories found (search items, each once, most stars first per
  range) and the errors met. Options: `api_url`, `min_stars`, `pushed_since`,
  `limit`, `per_page`, `result_cap`.
  """
  @spec collect(Http.t(), keyword()) :: {[map()], [String.t()]}
  def collect(http, opts) do
    state = %{items: [], seen: MapSet.new(), errors: []}

    state =
      case page(http, opts, {opts[:min_stars], nil}, 1) do
        {:ok, first} ->
          if first.total > opts[:result_cap] and first.items != [] do
            top = first.items |> Enum.map(&stars/1) |> Enum.max()
            split(http, opts, opts[:min_stars], max(top, opts[:min_stars]), state)
          else
            read_range(http, opts, {opts[:min_stars], nil}, first, state)
          end

        {:error, detail} ->
          %{state | errors: [detail]}
      end

    {Enum.reverse(state.items), Enum.reverse(state.errors)}
  end

  defp split(http, opts, lo, hi, state) do
    if full?(state, opts) do
      state
    else
      cap = opts[:result_cap]

      case page(http, opts, {lo, hi}, 1) do
        {:ok, first} when first.total <= cap or lo >= hi ->
          if first.total > cap,
            do:
              Logger.warning(
                "github: #{first.total} repositories have #{lo} stars; reading the first #{cap}"
              )

          read_range(http, opts, {lo, hi}, first, state)

        {:ok, _first} ->
          mid = div(lo + hi, 2)
          state = split(http, opts, mid + 1, hi, state)
          split(http, opts, lo, mid, state)

        {:error, detail} ->
          %{state | errors: [detail | state.errors]}
      end
    end
  end

  defp read_range(http, opts, range, first, state) do
    state = add(state, first.items, opts)
    last_page = div(min(first.total, opts[:result_cap]) + opts[:per_page] - 1, opts[:per_page])
    more_pages(http, opts, range, 2, last_page, first.items, state)
  end

  defp more_pages(_http, _opts, _range, _number, _last, [], state), do: state

  defp more_pages(http, opts, range, number, last, _previous, state) do
    if number > last or full?(state, opts) do
      state
    else
      case page(http, opts, range, number) do
        {:ok, result} ->
          state = add(state, result.items, opts)
          more_pages(http, opts, range, number + 1, last, result.items, state)

        {:error, detail} ->
          %{state | errors: [detail | state.errors]}
      end
    end
  end

  defp add(state, items, opts) do
    Enum.reduce(items, state, fn item, state ->
      name = item["full_name"]

      cond do
        full?(state, opts) -> state
        MapSet.member?(state.seen, name) -> state
        true -> %{state | items: [item | state.items], seen: MapSet.put(state.seen, name)}
      end
    end)
  end

  defp full?(state, opts), do: opts[:limit] != nil and MapSet.size(state.seen) >= opts[:limit]

  defp page(http, opts, range, number) do
    query =
      URI.encode_query(%{
        "q" => query(range, opts[:pushed_since]),
        "sort" => "stars",
        "order" => "desc",
        "per_page" => opts[:per_page],
        "page" => number
      })

    url = "#{opts[:api_url]}/search/repositories?#{query}"

    case Http.get_json(http, url) do
      {:ok, %{"total_count" => total, "items" => items}}
      when is_integer(total) and is_list(items) ->
        {:ok, %{total: total, items: Enum.filter(items, &valid_item?/1)}}

      {:ok, _} ->
        {:error, "search #{url}: not a search result"}

      {:error, {reason, detail}} ->
        {:error, "search: #{reason}: #{detail}"}
    end
  end

  defp valid_item?(%{"full_name" => name}) when is_binary(name), do: true
  defp valid_item?(_), do: false

  defp stars(item) do
    case item["stargazers_count"] do
      n when is_integer(n) -> n
      _ -> 0
    end
  end
end
