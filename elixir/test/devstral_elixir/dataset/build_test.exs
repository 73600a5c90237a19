defmodule DevstralElixir.Dataset.BuildTest do
  # Starts a real Python worker and runs a real (small) build through the contract.
  use ExUnit.Case, async: false

  alias DevstralElixir.Dataset.Build
  alias DevstralElixir.Worker

  @moduletag :tmp_dir

  test "builds a dataset through the worker and reports progress", %{tmp_dir: dir} do
    input = write_corpus(Path.join(dir, "raw"))
    out = Path.join(dir, "dataset")
    worker = Worker.Local.start!()

    request = Build.request!(inputs: [input], out: out, seed: 7)
    test = self()
    assert {:ok, done} = Build.run(worker, request, &send(test, {:event, &1}))

    assert done.kind == "COMPLETED"
    assert done.artifact_path == out
    assert_received {:event, %{kind: "PROGRESS"}}

    for stage <- ~w(stage1 stage2 stage3), split <- ~w(train eval) do
      assert File.exists?(Path.join([out, stage, split <> ".jsonl"]))
    end

    manifest = out |> Path.join("manifest.json") |> File.read!() |> :jiffy.decode([:return_maps])
    assert manifest["seed"] == 7
  end

  test "bad input is refused before any work, naming the problem", %{tmp_dir: dir} do
    error =
      assert_raise ArgumentError, fn ->
        Build.request!(inputs: [Path.join(dir, "nope")], out: dir)
      end

    assert error.message =~ "nope"

    broken = Path.join(dir, "broken")
    File.mkdir_p!(broken)
    File.write!(Path.join(broken, "manifest.jsonl"), "{not json\n")
    worker = Worker.Local.start!()
    request = Build.request!(inputs: [broken], out: Path.join(dir, "out"))
    assert {failure, message} = Build.run(worker, request, fn _ -> :ok end)
    assert failure in [:invalid, :error]
    assert message =~ "BuildDataset"
    assert message =~ "manifest.jsonl"
    refute File.exists?(Path.join(dir, "out"))
  end

  # Three small packages in the scrapers' layout.
  defp write_corpus(root) do
    rows =
      for {name, n} <- [{"alpha", 1}, {"beta", 2}, {"gamma", 3}] do
        path = "#{name}-0.#{n}.0"
        lib = Path.join([root, path, "lib"])
        File.mkdir_p!(lib)

        File.write!(Path.join(lib, "#{name}.ex"), """
        defmodule #{Macro.camelize(name)} do
          @moduledoc "The #{name} package, number #{n}."

          @doc "Adds #{n} to a number."
          @spec add(integer()) :: integer()
          def add(x) when is_integer(x) do
            x
            |> Kernel.+(#{n})
            |> Kernel.*(1)
          end

          def describe(list) do
            Enum.map(list, fn item -> "#{name}: \#{item} (#{n})" end)
          end
        end
        """)

        meta = %{"name" => name, "version" => "0.#{n}.0", "licenses" => ["MIT"]}
        File.write!(Path.join([root, path, "metadata.json"]), :jiffy.encode(meta))

        :jiffy.encode(%{
          "name" => name,
          "version" => "0.#{n}.0",
          "licenses" => ["MIT"],
          "sha256" => String.duplicate("0", 64),
          "files" => 1,
          "path" => path
        })
      end

    File.write!(Path.join(root, "manifest.jsonl"), Enum.join(rows, "\n") <> "\n")
    root
  end
end
