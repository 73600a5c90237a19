defmodule DevstralElixir.Scrape.Docs do
  @moduledoc """
  Writes the documentation of every module of the installed Elixir and
  OTP applications as Markdown (`Code.fetch_docs/1`, rendered by
  `DevstralElixir.Scrape.Docs.Markdown`), one package per application:
  `OUT/APP-VSN/Module.md` with a `metadata.json` and a manifest row
  recording the licence (Apache-2.0 for both Elixir and OTP) and the source.

  OTP's documentation chunks are only present when they were installed (on
  Debian they are not by default); an application without any is skipped
  with reason `:no_docs`. A rerun skips applications already in the manifest.
  """

  alias DevstralElixir.Scrape.{Batch, Paths, Progress, Workspace}
  alias DevstralElixir.Scrape.Docs.Markdown

  @elixir_apps [:elixir, :eex, :ex_unit, :iex, :logger, :mix]

  @doc """
  The options with defaults: `out` (default `DATA_DIR/raw/docs`), `apps`
  (application names; default every installed Elixir and OTP application),
  `concurrency` (default 2).
  """
  @spec options(keyword()) :: keyword()
  def options(opts) do
    opts
    |> Keyword.validate!(out: Paths.default_out("docs"), apps: nil, concurrency: 2)
    |> Keyword.update!(:out, &Path.expand/1)
  end

  @doc "Writes the documentation and returns the run summary."
  @spec run(keyword(), Progress.fun()) :: map()
  def run(opts \\ [], progress \\ Progress.silent()) do
    opts = options(opts)
    out = opts[:out]
    ctx = %{out: out, index: Workspace.open!(out)}
    apps = installed_apps()

    {items, unknown} =
      case opts[:apps] do
        nil ->
          {apps, []}

        wanted ->
          wanted = Enum.map(wanted, &to_string/1)

          {Enum.filter(apps, &(to_string(&1.app) in wanted)),
           wanted -- Enum.map(apps, &to_string(&1.app))}
      end

    summary =
      Batch.run(items, &app(&1, ctx),
        source: "docs",
        out: out,
        concurrency: opts[:concurrency],
        progress: progress,
        label: &{to_string(&1.app), &1.vsn}
      )

    Batch.finish(
      summary,
      progress,
      Enum.map(unknown, &"#{&1} is not an installed Elixir or OTP application")
    )
  end

  @doc """
  The installed Elixir applications and the OTP applications listed in
  OTP's `installed_application_versions`, as maps with `app`, `vsn`,
  `kind` (`:elixir` or `:otp`), `ebin` and `source_url`.
  """
  @spec installed_apps() :: [map()]
  def installed_apps do
    elixir =
      for app <- @elixir_apps, dir = lib_dir(app), vsn = app_vsn(dir, app), vsn != nil do
        %{
          app: app,
          vsn: vsn,
          kind: :elixir,
          ebin: Path.join(dir, "ebin"),
          source_url: "https://github.com/elixir-lang/elixir/tree/v#{System.version()}/lib/#{app}"
        }
      end

    otp_version = otp_version()

    otp =
      for line <- otp_installed(),
          [_, name, vsn] <- [Regex.run(~r/^([a-z_]+)-([0-9][0-9A-Za-z.+-]*)$/, line)],
          app = String.to_atom(name),
          dir = lib_dir(app),
          dir != nil do
        where = if app == :erts, do: "erts", else: "lib/#{app}"

        %{
          app: app,
          vsn: vsn,
          kind: :otp,
          ebin: Path.join(dir, "ebin"),
          source_url: "https://github.com/erlang/otp/tree/OTP-#{otp_version}/#{where}"
        }
      end

    elixir ++ otp
  end

  defp lib_dir(app) do
    case :code.lib_dir(app) do
      {:error, _} -> nil
      dir -> List.to_string(dir)
    end
  end

  defp app_vsn(dir, app) do
    case :file.consult(String.to_charlist(Path.join([dir, "ebin", "#{app}.app"]))) do
      {:ok, [{:application, ^app, props}]} -> props |> Keyword.get(:vsn) |> to_string()
      _ -> nil
    end
  end

  defp releases_dir,
    do:
      Path.join([
        List.to_string(:code.root_dir()),
        "releases",
        List.to_string(:erlang.system_info(:otp_release))
      ])

  defp otp_installed do
    case File.read(Path.join(releases_dir(), "installed_application_versions")) do
      {:ok, text} -> String.split(text, "\n", trim: true)
      _ -> []
    end
  end

  defp otp_version do
    case File.read(Path.join(releases_dir(), "OTP_VERSION")) do
      {:ok, text} -> String.trim(text)
      _ -> List.to_string(:erlang.system_info(:otp_release))
    end
  end

  ## One application

  defp app(item, ctx) do
    name = to_string(item.app)

    if Map.has_key?(ctx.index, {name, item.vsn}) do
      {:skipped, %{name: name, version: item.vsn, reason: :already_fetched}}
    else
      case pages(item.ebin) do
        [] ->
          {:skipped,
           %{
             name: name,
             version: item.vsn,
             reason: :no_docs,
             detail: "no documentation chunks are installed for #{name}"
           }}

        pages ->
          publish(item, name, pages, ctx)
      end
    end
  end

  defp pages(ebin) do
    ebin
    |> Path.join("*.beam")
    |> Path.wildcard()
    |> Enum.sort()
    |> Enum.flat_map(fn beam ->
      module = beam |> Path.basename(".beam") |> String.to_atom()

      with {:docs_v1, _, _, _, _, _, _} = chunk <- Code.fetch_docs(beam),
           markdown when is_binary(markdown) <- Markdown.render(module, chunk) do
        [{Workspace.safe_component(Markdown.title(module)) <> ".md", markdown}]
      else
        _ -> []
      end
    end)
  end

  defp publish(item, name, pages, ctx) do
    work = Workspace.work_dir!(ctx.out, "#{name}-#{item.vsn}")
    staged = Path.join(work, "package")
    File.mkdir_p!(staged)

    try do
      Enum.each(pages, fn {file, markdown} -> File.write!(Path.join(staged, file), markdown) end)
      files = Enum.map(pages, &elem(&1, 0))
      bytes = pages |> Enum.map(&byte_size(elem(&1, 1))) |> Enum.sum()

      sha =
        :crypto.hash(:sha256, Enum.map(pages, fn {f, md} -> [f, 0, md] end))
        |> Base.encode16(case: :lower)

      dir = "#{name}-#{item.vsn}"

      Workspace.finish_package!(staged, ctx.out, dir,
        shared: %{
          "name" => name,
          "version" => item.vsn,
          "source" => "docs",
          "origin" => Atom.to_string(item.kind),
          "licenses" => ["Apache-2.0"],
          "links" => %{"Source" => item.source_url},
          "sha256" => sha
        },
        metadata: %{
          "source_url" => item.source_url,
          "description" => "Module documentation of #{name} #{item.vsn}, from Code.fetch_docs/1"
        },
        files: files,
        bytes: bytes
      )

      {:ok, %{name: name, version: item.vsn, files: length(files), bytes: bytes}}
    after
      File.rm_rf!(work)
    end
  end
end
