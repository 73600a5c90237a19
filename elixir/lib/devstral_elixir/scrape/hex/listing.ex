defmodule DevstralElixir.Scrape.Hex.Listing do
  @moduledoc """
  Lists Hex packages through `GET {api}/packages?sort=SORT&page=N` (100 per
  page, pages from 1, with ETag revalidation), keeping those that pass the
  selection (`min_downloads` on all-time downloads, `updated_since` on
  `updated_at`) until `limit` are found or the pages run out.
  """

  require Logger

  alias DevstralElixir.Scrape.Http

  @doc """
  The selected package entries (maps as the API gives them) and the errors
  met while listing (a failed page ends the listing; what was found so far
  is kept).
  """
  @spec list(Http.t(), keyword()) :: {[map()], [String.t()]}
  def list(http, opts), do: page(http, opts, 1, [], 0)

  defp page(http, opts, number, acc, count) do
    query = URI.encode_query(%{"sort" => opts[:sort], "page" => number})
    url = "#{opts[:api_url]}/packages?#{query}"

    case Http.get_json(http, url, cache: true) do
      {:ok, entries} when is_list(entries) ->
        {valid, invalid} = Enum.split_with(entries, &is_map/1)

        if invalid != [],
          do: Logger.warning("#{url}: ignoring #{length(invalid)} entries that are not objects")

        selected = Enum.filter(valid, &selected?(&1, opts))
        acc = Enum.reverse(selected, acc)
        count = count + length(selected)

        cond do
          opts[:limit] && count >= opts[:limit] ->
            {acc |> Enum.reverse() |> Enum.take(opts[:limit]), []}

          length(entries) < opts[:page_size] ->
            {Enum.reverse(acc), []}

          past_the_end?(valid, opts) ->
            {Enum.reverse(acc), []}

          true ->
            page(http, opts, number + 1, acc, count)
        end

      {:ok, _other} ->
        {Enum.reverse(acc), ["listing page #{number}: #{url} did not return a JSON list"]}

      {:error, {reason, detail}} ->
        {Enum.reverse(acc), ["listing page #{number}: #{reason}: #{detail}"]}
    end
  end

  @doc "Whether a listing entry passes `min_downloads` and `updated_since`."
  @spec selected?(map(), keyword()) :: boolean()
  def selected?(entry, opts) do
    downloads(entry) >= opts[:min_downloads] and recent_enough?(entry, opts[:updated_since])
  end

  # Sorted listings stop early once no later entry can pass.
  defp past_the_end?(entries, opts) do
    since = opts[:updated_since]
    min = opts[:min_downloads]

    case opts[:sort] do
      "updated_at" when since != nil -> Enum.any?(entries, &(not recent_enough?(&1, since)))
      "total_downloads" when min > 0 -> Enum.any?(entries, &(downloads(&1) < min))
      _ -> false
    end
  end

  defp downloads(entry) do
    case entry["downloads"] do
      %{"all" => all} when is_integer(all) -> all
      _ -> 0
    end
  end

  defp recent_enough?(_entry, nil), do: true

  defp recent_enough?(entry, %Date{} = since) do
    with updated when is_binary(updated) <- entry["updated_at"],
         {:ok, datetime, _} <- DateTime.from_iso8601(updated) do
      Date.compare(DateTime.to_date(datetime), since) != :lt
    else
      _ -> false
    end
  end
end
