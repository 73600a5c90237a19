defmodule DevstralElixir.Chat.Terminal do
  @moduledoc """
  The terminal under `mix chat`: whether stdin is one, and its modes.

  The BEAM reads stdin through its own port, and a child it starts has no
  controlling terminal, so `stty` is pointed at the BEAM's fd 0 through
  `/proc`. For the whole session the terminal sends Ctrl-C as a key rather
  than a signal (a signal would open the BEAM's BREAK menu); while an answer
  streams it is also put in non-canonical mode without echo, so Ctrl-C and
  Esc arrive at once and stop the answer. `restore/1` puts back the saved
  settings, on every way out.
  """

  @type saved :: String.t()

  @doc "The saved settings of stdin when it is a terminal, else `:not_a_terminal`."
  @spec save() :: {:ok, saved()} | :not_a_terminal
  def save do
    case stty(["-g"]) do
      {settings, 0} -> {:ok, String.trim(settings)}
      _ -> :not_a_terminal
    end
  end

  @doc "Line editing by the terminal (the prompt), with Ctrl-C as a plain key."
  @spec line_mode() :: :ok
  def line_mode, do: set(["icanon", "echo", "-isig"])

  @doc "Every key at once and unechoed (while an answer streams)."
  @spec key_mode() :: :ok
  def key_mode, do: set(["-icanon", "-echo", "-isig", "min", "1", "time", "0"])

  @doc "Puts back settings from `save/0`."
  @spec restore(saved()) :: :ok
  def restore(saved), do: set([saved])

  defp set(args) do
    {_, _} = stty(args)
    :ok
  end

  defp stty(args) do
    System.cmd("stty", ["-F", "/proc/#{System.pid()}/fd/0" | args], stderr_to_stdout: true)
  end

  @doc """
  Starts a process that reads stdin one character at a time and sends
  `{:stdin, char}` for each, then `{:stdin, :eof}`, to `owner`. One reader
  owns stdin for the session, so no read is ever left pending on it.
  """
  @spec start_reader(pid()) :: pid()
  def start_reader(owner) do
    spawn_link(fn -> read_loop(owner) end)
  end

  defp read_loop(owner) do
    case IO.getn(:stdio, "", 1) do
      char when is_binary(char) ->
        send(owner, {:stdin, char})
        read_loop(owner)

      _eof_or_error ->
        send(owner, {:stdin, :eof})
    end
  end
end
