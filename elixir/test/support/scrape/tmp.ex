defmodule DevstralElixir.Test.Scrape.Tmp do
  @moduledoc "Per-test temporary directories under the system temp dir, removed when the test ends."

  import ExUnit.Callbacks, only: [on_exit: 1]

  @doc "A fresh empty directory, deleted at the end of the calling test."
  @spec dir!() :: Path.t()
  def dir! do
    dir =
      Path.join(
        System.tmp_dir!(),
        "scrape_test_#{System.unique_integer([:positive])}_#{:rand.uniform(1_000_000)}"
      )

    File.rm_rf!(dir)
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    dir
  end

  @doc "Every path under `dir`, relative, sorted (dot files included)."
  @spec tree(Path.t()) :: [String.t()]
  def tree(dir) do
    dir
    |> Path.join("**")
    |> Path.wildcard(match_dot: true)
    |> Enum.map(&Path.relative_to(&1, dir))
    |> Enum.sort()
  end
end
