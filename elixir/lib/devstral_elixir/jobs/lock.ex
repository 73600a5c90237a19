defmodule DevstralElixir.Jobs.Lock do
  @moduledoc """
  Keeps two BEAMs from opening the same Mnesia directory: a lock file,
  `queue.lock` in that directory, holding the OS pid of the BEAM that owns it.

  The file appears atomically with its content (written to a temporary file,
  then hard-linked into place), so no reader ever sees it empty. A lock whose
  pid is gone, or no longer a BEAM (the pid was reused), is stale and taken
  over. A lock held by this BEAM is simply kept, so a restarted queue process
  gets it back.
  """

  @file_name "queue.lock"

  @doc "The lock file of a Mnesia directory."
  @spec path(Path.t()) :: Path.t()
  def path(dir), do: Path.join(dir, @file_name)

  @doc """
  Takes the lock of `dir` for this BEAM. `{:error, message}` when another live
  BEAM holds it; the message names that process and the file.
  """
  @spec acquire(Path.t()) :: :ok | {:error, String.t()}
  def acquire(dir), do: acquire(dir, 2)

  defp acquire(dir, tries_left) do
    path = path(dir)
    me = System.pid()

    with :ok <- mkdir(dir) do
      case link_new(path, me) do
        :ok ->
          :ok

        {:error, :eexist} ->
          case holder(dir) do
            {:ok, ^me} -> :ok
            {:ok, other} -> {:error, held_message(dir, other)}
            :none when tries_left > 0 -> take_over(dir, path, tries_left)
            :none -> {:error, "cannot take the lock #{path}: it keeps reappearing"}
          end

        {:error, reason} ->
          {:error, "cannot create the lock file #{path}: #{:file.format_error(reason)}"}
      end
    end
  end

  defp take_over(dir, stale, tries_left) do
    _ = File.rm(stale)
    acquire(dir, tries_left - 1)
  end

  @doc """
  The OS pid of the live BEAM holding the lock of `dir` (which may be this
  one), or `:none` when the lock is free or stale.
  """
  @spec holder(Path.t()) :: {:ok, String.t()} | :none
  def holder(dir) do
    with {:ok, content} <- File.read(path(dir)),
         pid = String.trim(content),
         true <- pid =~ ~r/^\d+$/,
         true <- pid == System.pid() or alive_beam?(pid) do
      {:ok, pid}
    else
      _ -> :none
    end
  end

  @doc """
  `:ok` when this BEAM could take the lock of `dir`, or `{:error, message}`
  naming the BEAM that holds it. Takes nothing.
  """
  @spec check(Path.t()) :: :ok | {:error, String.t()}
  def check(dir) do
    me = System.pid()

    case holder(dir) do
      {:ok, ^me} -> :ok
      {:ok, other} -> {:error, held_message(dir, other)}
      :none -> :ok
    end
  end

  @doc "Removes the lock of `dir` if this BEAM holds it."
  @spec release(Path.t()) :: :ok
  def release(dir) do
    me = System.pid()

    case holder(dir) do
      {:ok, ^me} -> _ = File.rm(path(dir))
      _ -> :ok
    end

    :ok
  end

  defp held_message(dir, pid) do
    "the Mnesia directory #{dir} is in use by another BEAM (OS pid #{pid}, lock file " <>
      "#{path(dir)}): stop that host, talk to it over its HTTP API, or set another DATA_DIR"
  end

  defp mkdir(dir) do
    case File.mkdir_p(dir) do
      :ok -> :ok
      {:error, reason} -> {:error, "cannot create #{dir}: #{:file.format_error(reason)}"}
    end
  end

  # Write the pid to a private temporary file, then hard-link it into place:
  # link fails with :eexist when the lock exists, and never exposes an empty file.
  defp link_new(path, content) do
    tmp = "#{path}.#{content}.#{System.unique_integer([:positive])}"

    try do
      with :ok <- File.write(tmp, content), do: File.ln(tmp, path)
    after
      File.rm(tmp)
    end
  end

  defp alive_beam?(pid) do
    proc = "/proc/#{pid}"

    if File.dir?("/proc/self") do
      case File.read(Path.join(proc, "cmdline")) do
        {:ok, cmdline} -> String.contains?(cmdline, "beam")
        {:error, _} -> false
      end
    else
      match?({_, 0}, System.cmd("kill", ["-0", pid], stderr_to_stdout: true))
    end
  end
end
