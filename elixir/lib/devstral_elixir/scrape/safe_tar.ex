defmodule DevstralElixir.Scrape.SafeTar do
  @moduledoc """
  Extracts untrusted tar archives.

  The whole table of entries is checked before anything is written:
    * absolute names and `..` components are rejected (`:unsafe_path`);
    * symbolic links (`:symlink`), hard links (`:hard_link`) and device or
      FIFO entries (`:device_file`) are rejected;
    * the total size (`max_bytes`, default 128 MiB), each file's size
      (`max_file_bytes`, default 16 MiB) and the number of entries
      (`max_files`, default 20,000) are capped (`:too_large`, `:too_many_files`);
    * a truncated archive is `:truncated`.
  Only regular files that pass the keep filter (default
  `DevstralElixir.Scrape.KeepList.keep?/1`) are extracted, into a staging
  directory next to `dest` that is renamed to `dest` at the end; file modes
  are reset to 0644 and files holding NUL bytes (binaries) are dropped.
  With `strip_components: 1` the archive must hold one top-level directory
  (as GitHub tarballs do), whose contents become `dest`.

  Errors are `{reason, detail}`, the detail naming the offending entry.
  """

  alias DevstralElixir.Scrape.{Gzip, KeepList}

  @defaults [
    max_bytes: 128 * 1024 * 1024,
    max_file_bytes: 16 * 1024 * 1024,
    max_files: 20_000,
    strip_components: 0,
    keep: &KeepList.keep?/1
  ]

  @type result :: %{files: [String.t()], bytes: non_neg_integer(), top: String.t() | nil}
  @type error :: {atom(), String.t()}

  @doc "The default caps and options."
  @spec defaults() :: keyword()
  def defaults, do: @defaults

  @doc "The size caps among `opts`: `max_bytes`, `max_file_bytes` and `max_files`."
  @spec caps(keyword()) :: keyword()
  def caps(opts), do: Keyword.take(opts, [:max_bytes, :max_file_bytes, :max_files])

  @doc """
  Extracts the gzip-compressed tar `tgz` into `dest` (which must not exist).
  Options: `max_bytes`, `max_file_bytes`, `max_files`, `strip_components`
  (0 or 1), `keep` (a predicate on the relative path).
  """
  @spec extract_tgz(Path.t(), Path.t(), keyword()) :: {:ok, result()} | {:error, error()}
  def extract_tgz(tgz, dest, opts \\ []) do
    opts = Keyword.validate!(opts, @defaults)
    tar = dest <> ".tar"
    # Headers and padding add at most a little over the files' own sizes.
    cap = opts[:max_bytes] + div(opts[:max_bytes], 4) + 1024 * 1024

    try do
      with {:ok, _size} <- Gzip.gunzip(tgz, tar, cap), do: extract_tar(tar, dest, opts)
    after
      File.rm(tar)
    end
  end

  @doc "Like `extract_tgz/3` for an uncompressed tar."
  @spec extract_tar(Path.t(), Path.t(), keyword()) :: {:ok, result()} | {:error, error()}
  def extract_tar(tar, dest, opts \\ []) do
    opts = Keyword.validate!(opts, @defaults)
    staging = dest <> ".staging"
    File.rm_rf!(staging)

    try do
      with {:ok, entries} <- table(tar),
           {:ok, plan} <- plan(entries, opts),
           :ok <- unpack(tar, staging, plan),
           source = if(plan.top, do: Path.join(staging, plan.top), else: staging),
           {:ok, files, bytes} <- settle(source) do
        if File.dir?(source), do: File.rename!(source, dest), else: File.mkdir_p!(dest)
        {:ok, %{files: files, bytes: bytes, top: plan.top}}
      end
    after
      File.rm_rf!(staging)
    end
  end

  @doc """
  The entries of the tar file `tar`, as `:erl_tar.table/2` gives them in
  verbose form. A short archive is `{:error, {:truncated, _}}`.
  """
  @spec table(Path.t() | {:binary, binary()}) :: {:ok, [tuple()]} | {:error, error()}
  def table(tar) do
    source = if is_binary(tar), do: String.to_charlist(tar), else: tar

    case :erl_tar.table(source, [:verbose]) do
      {:ok, entries} -> {:ok, entries}
      {:error, :eof} -> {:error, {:truncated, "the tar archive ends early"}}
      {:error, {_, :eof}} -> {:error, {:truncated, "the tar archive ends early"}}
      {:error, reason} -> {:error, {:bad_archive, "unreadable tar archive: #{format(reason)}"}}
    end
  catch
    kind, reason -> {:error, {:bad_archive, "unreadable tar archive: #{inspect({kind, reason})}"}}
  end

  @doc """
  Checks every entry of a table against the rules and caps and returns what
  to extract: `%{keep: [{name_in_archive, relative_path}], top: top_dir | nil}`.
  """
  @spec plan([tuple()], keyword()) :: {:ok, map()} | {:error, error()}
  def plan(entries, opts \\ []) do
    opts = Keyword.validate!(opts, @defaults)
    entries = Enum.reject(entries, &pax_global?/1)

    if length(entries) > opts[:max_files] do
      {:error,
       {:too_many_files, "#{length(entries)} entries, over the cap of #{opts[:max_files]}"}}
    else
      initial = %{keep: [], top: :unset, total: 0}

      Enum.reduce_while(entries, {:ok, initial}, fn entry, {:ok, acc} ->
        case check(entry, acc, opts) do
          {:ok, acc} -> {:cont, {:ok, acc}}
          error -> {:halt, error}
        end
      end)
      |> case do
        {:ok, acc} ->
          top = if acc.top == :unset, do: nil, else: acc.top
          {:ok, %{keep: Enum.reverse(acc.keep), top: top}}

        error ->
          error
      end
    end
  end

  # git archive starts with a pax global header; :erl_tar reports it as an
  # entry of unknown type. It carries only a comment, so it is skipped.
  defp pax_global?({'pax_global_header', :unknown, _, _, _, _, _}), do: true
  defp pax_global?(_), do: false

  defp check({name, type, size, _mtime, _mode, _uid, _gid}, acc, opts) do
    with {:ok, path} <- safe_path(name),
         :ok <- check_type(type, path),
         :ok <- check_size(path, size, acc.total, opts),
         {:ok, top, rest} <- strip(path, acc.top, opts[:strip_components]) do
      keep =
        if type == :regular and rest != "" and opts[:keep].(rest),
          do: [{name, rest} | acc.keep],
          else: acc.keep

      {:ok, %{acc | keep: keep, top: top, total: acc.total + size}}
    end
  end

  @doc """
  The normalised relative form of an archive entry name, or
  `{:error, {:unsafe_path, detail}}` for an absolute name, a `..` component,
  a NUL byte or a name that is not valid Unicode.
  """
  @spec safe_path(charlist() | String.t()) :: {:ok, String.t()} | {:error, error()}
  def safe_path(name) do
    case :unicode.characters_to_binary(name) do
      path when is_binary(path) ->
        parts = String.split(path, "/")

        cond do
          String.starts_with?(path, "/") ->
            {:error, {:unsafe_path, "entry #{inspect(path)} has an absolute path"}}

          ".." in parts ->
            {:error, {:unsafe_path, "entry #{inspect(path)} has a '..' component"}}

          String.contains?(path, <<0>>) ->
            {:error, {:unsafe_path, "entry #{inspect(path)} holds a NUL byte"}}

          true ->
            case Enum.reject(parts, &(&1 in ["", "."])) do
              [] -> {:error, {:unsafe_path, "entry #{inspect(path)} has an empty name"}}
              kept -> {:ok, Enum.join(kept, "/")}
            end
        end

      _ ->
        {:error, {:unsafe_path, "entry #{inspect(name)} is not a valid UTF-8 name"}}
    end
  end

  defp check_type(:regular, _path), do: :ok
  defp check_type(:directory, _path), do: :ok

  defp check_type(:symlink, path),
    do: {:error, {:symlink, "entry #{inspect(path)} is a symbolic link"}}

  defp check_type(:link, path),
    do: {:error, {:hard_link, "entry #{inspect(path)} is a hard link"}}

  defp check_type(type, path) when type in [:char, :block, :fifo],
    do: {:error, {:device_file, "entry #{inspect(path)} is a #{type} device or FIFO"}}

  defp check_type(type, path),
    do: {:error, {:unsupported_entry, "entry #{inspect(path)} has unsupported type #{type}"}}

  defp check_size(path, size, total, opts) do
    cond do
      size > opts[:max_file_bytes] ->
        {:error,
         {:too_large,
          "entry #{inspect(path)} is #{size} bytes, over the #{opts[:max_file_bytes]}-byte file cap"}}

      total + size > opts[:max_bytes] ->
        {:error,
         {:too_large,
          "entry #{inspect(path)} takes the files past the #{opts[:max_bytes]}-byte total cap"}}

      true ->
        :ok
    end
  end

  defp strip(path, top, 0), do: {:ok, top, path}

  defp strip(path, top, 1) do
    [first | rest] = String.split(path, "/")

    cond do
      top != :unset and first != top ->
        {:error,
         {:bad_layout,
          "entry #{inspect(path)} is outside the single top-level directory #{inspect(top)}"}}

      true ->
        {:ok, first, Enum.join(rest, "/")}
    end
  end

  defp unpack(_tar, staging, %{keep: []}), do: File.mkdir_p(staging)

  defp unpack(tar, staging, plan) do
    File.mkdir_p!(staging)
    names = Enum.map(plan.keep, &elem(&1, 0))

    case :erl_tar.extract(String.to_charlist(tar), [
           {:cwd, String.to_charlist(staging)},
           {:files, names}
         ]) do
      :ok -> :ok
      {:error, reason} -> {:error, {:bad_archive, "extraction failed: #{format(reason)}"}}
    end
  end

  # Resets modes, drops binaries and checks that only plain files and
  # directories were written (the plan guarantees it; this is the backstop).
  defp settle(dir) do
    if File.dir?(dir), do: walk(dir, "", {[], 0}), else: {:ok, [], 0}
  end

  defp walk(root, rel, {files, bytes}) do
    dir = Path.join(root, rel)
    File.chmod!(dir, 0o755)

    dir
    |> File.ls!()
    |> Enum.sort()
    |> Enum.reduce_while({:ok, files, bytes}, fn name, {:ok, files, bytes} ->
      child = if rel == "", do: name, else: rel <> "/" <> name
      path = Path.join(root, child)

      case File.lstat!(path) do
        %File.Stat{type: :directory} ->
          case walk(root, child, {files, bytes}) do
            {:ok, files, bytes} -> {:cont, {:ok, files, bytes}}
            error -> {:halt, error}
          end

        %File.Stat{type: :regular, size: size} ->
          File.chmod!(path, 0o644)

          if binary_file?(path) do
            File.rm!(path)
            {:cont, {:ok, files, bytes}}
          else
            {:cont, {:ok, [child | files], bytes + size}}
          end

        %File.Stat{type: type} ->
          {:halt,
           {:error, {:unsupported_entry, "extraction produced #{inspect(child)} of type #{type}"}}}
      end
    end)
    |> case do
      {:ok, files, bytes} when rel == "" -> {:ok, Enum.sort(files), bytes}
      other -> other
    end
  end

  @doc "Whether the file at `path` looks binary (a NUL byte in its first 8 KiB)."
  @spec binary_file?(Path.t()) :: boolean()
  def binary_file?(path) do
    File.open!(path, [:read, :binary, :raw], fn file ->
      case :file.read(file, 8192) do
        {:ok, data} -> :binary.match(data, <<0>>) != :nomatch
        _ -> false
      end
    end)
  end

  defp format(reason) do
    case :erl_tar.format_error(reason) do
      text when is_list(text) -> List.to_string(text)
      _ -> inspect(reason)
    end
  rescue
    _ -> inspect(reason)
  end
end
