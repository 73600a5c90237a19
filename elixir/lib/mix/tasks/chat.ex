defmodule Mix.Tasks.Chat do
  @shortdoc "Chats with the served model in the terminal, streaming each answer"

  @moduledoc """
  A terminal chat with the model the host serves, for people who live in a
  shell.

      mix chat [--model ID] [--system TEXT] [--max-tokens N]

  Answers stream token by token and the conversation is kept, so follow-up
  questions work. At the prompt:

    * `/reset` starts a new conversation;
    * `/model` lists the model ids, `/model ID` switches to one (adapters
      and, with RAG, `ID+rag` variants included);
    * `/help` lists the commands, `/quit` (or Ctrl-D) quits.

  Ctrl-C or Esc while an answer streams stops it, on the worker too, and
  the chat goes on with the part already written. On the prompt line Ctrl-C
  and Esc are ordinary keys, and a line holding either is dropped when Enter
  is pressed: it is most likely a stop key that came just after the answer
  ended, not a question.

  When stdin is not a terminal, each line read from it is one prompt of the
  same conversation and only the answers are printed on stdout, one per
  prompt, so scripts can pipe into it:

      echo "Write a GenServer that counts" | mix chat --max-tokens 200

  The chat talks to the host on `127.0.0.1:$HTTP_PORT` (sending `API_TOKEN`
  when set). When none answers, it starts one in this process, as `make run`
  would, and stops it when the chat ends.
  """

  use Mix.Task

  alias DevstralElixir.Chat.{Client, Terminal}
  alias DevstralElixir.Jobs.CLI

  @switches [model: :string, system: :string, max_tokens: :integer]
  # Ctrl-C and Esc: they stop a streaming answer, and a prompt line holding one is dropped.
  @stop_keys [<<3>>, <<27>>]
  @help "commands: /reset, /model [ID], /help, /quit; Ctrl-C or Esc stops an answer, Ctrl-D quits"

  @impl true
  def run(argv) do
    flags = CLI.parse_flags!("chat", argv, @switches)
    max_tokens = CLI.positive!("chat", "--max-tokens", flags[:max_tokens])
    Mix.Task.run("app.config")
    client = connect!()

    state = %{
      client: client,
      model: flags[:model],
      system: flags[:system],
      max_tokens: max_tokens,
      messages: [],
      tty?: false
    }

    if state.model, do: check_model!(client, state.model)

    case Terminal.save() do
      {:ok, saved} -> interactive(%{state | tty?: true}, saved)
      :not_a_terminal -> piped(state)
    end
  end

  # -- connecting -----------------------------------------------------------------

  defp connect!() do
    port = System.get_env("HTTP_PORT", "4000")
    client = Client.new("http://127.0.0.1:#{port}", System.get_env("API_TOKEN"))

    unless Client.up?(client) do
      notice(
        "no host on 127.0.0.1:#{port}; starting one in this process (it stops with the chat)"
      )

      # The host's own log lines would interleave with the answers.
      Logger.configure(level: :warning)
      Mix.Task.run("app.start")
      await_worker!(client, System.monotonic_time(:millisecond) + 300_000)
    end

    client
  end

  defp await_worker!(client, deadline) do
    case Client.worker_status(client) do
      "ready" ->
        :ok

      "failed" ->
        Mix.raise("mix chat: the worker could not load the model; see GET /health")

      _starting ->
        if System.monotonic_time(:millisecond) > deadline,
          do: Mix.raise("mix chat: the worker did not become ready in 5 minutes")

        Process.sleep(200)
        await_worker!(client, deadline)
    end
  end

  defp check_model!(client, model) do
    case Client.models(client) do
      {:ok, ids} ->
        if model not in ids,
          do:
            Mix.raise(
              "mix chat: unknown model #{inspect(model)}; available: #{Enum.join(ids, ", ")}"
            )

      {:error, message} ->
        Mix.raise("mix chat: #{message}")
    end
  end

  # -- the two ways of reading prompts ----------------------------------------------

  defp interactive(state, saved) do
    Terminal.start_reader(self())

    try do
      Terminal.line_mode()
      IO.puts("chatting with #{state.model || "the host's default model"}; #{@help}")
      prompt_loop(state)
    after
      Terminal.restore(saved)
    end
  end

  defp prompt_loop(state) do
    IO.write("\nyou> ")

    case read_line("") do
      :eof ->
        IO.write("\n")

      line ->
        case handle(String.trim(line), state) do
          :quit -> :ok
          state -> prompt_loop(state)
        end
    end
  end

  defp read_line(acc) do
    receive do
      {:stdin, :eof} -> if acc == "", do: :eof, else: acc
      {:stdin, "\n"} -> acc
      {:stdin, char} -> read_line(acc <> char)
    end
  end

  defp piped(state) do
    case IO.gets("") do
      line when is_binary(line) ->
        case handle(String.trim(line), state) do
          :quit -> :ok
          state -> piped(state)
        end

      _eof ->
        :ok
    end
  end

  # -- one line -------------------------------------------------------------------

  defp handle("", state), do: state

  defp handle(line, state) do
    cond do
      String.contains?(line, @stop_keys) ->
        notice(state, "(line dropped: Ctrl-C or Esc stops an answer; Ctrl-D quits)")
        state

      String.starts_with?(line, "/") ->
        command(String.split(line, ~r/\s+/, parts: 2), state)

      true ->
        ask(line, state)
    end
  end

  defp command(["/quit"], _state), do: :quit
  defp command(["/exit"], _state), do: :quit

  defp command(["/reset"], state) do
    notice(state, "(new conversation)")
    %{state | messages: []}
  end

  defp command(["/help"], state) do
    notice(state, @help)
    state
  end

  defp command(["/model"], state) do
    case Client.models(state.client) do
      {:ok, ids} ->
        notice(state, "model: #{state.model || "default"}; available: #{Enum.join(ids, ", ")}")

      {:error, message} ->
        notice(state, message)
    end

    state
  end

  defp command(["/model", id], state) do
    case Client.models(state.client) do
      {:ok, ids} ->
        if id in ids do
          notice(state, "(now chatting with #{id}; the conversation goes on)")
          %{state | model: id}
        else
          notice(state, "unknown model #{inspect(id)}; available: #{Enum.join(ids, ", ")}")
          state
        end

      {:error, message} ->
        notice(state, message)
        state
    end
  end

  defp command([other | _], state) do
    notice(state, "unknown command #{other}; #{@help}")
    state
  end

  defp ask(text, state) do
    messages = state.messages ++ [%{"role" => "user", "content" => text}]
    system = if state.system, do: [%{"role" => "system", "content" => state.system}], else: []

    request =
      %{"messages" => system ++ messages}
      |> put_given("model", state.model)
      |> put_given("max_tokens", state.max_tokens)

    if state.tty?, do: Terminal.key_mode()

    outcome =
      try do
        Client.stream_chat(state.client, request, &IO.write/1, &stop?/1)
      after
        if state.tty?, do: Terminal.line_mode()
        drain_keys()
      end

    case outcome do
      {:done, finish, answer} ->
        IO.write("\n")
        if finish == "length", do: notice(state, "(cut at the token limit)")
        %{state | messages: messages ++ [%{"role" => "assistant", "content" => answer}]}

      {:stopped, answer} ->
        notice(state, "\n(stopped)")
        %{state | messages: messages ++ [%{"role" => "assistant", "content" => answer}]}

      {:error, message} ->
        notice(state, "\nerror: #{message}")
        state
    end
  end

  # While an answer streams: Ctrl-C and Esc stop it; other keys are dropped.
  defp stop?({:stdin, key}) when key in @stop_keys, do: true
  defp stop?(_other), do: false

  # Keys that arrived with the stop (the rest of an escape sequence) or were
  # typed during the answer must not start the next prompt's line.
  defp drain_keys do
    receive do
      {:stdin, key} when key != :eof -> drain_keys()
    after
      0 -> :ok
    end
  end

  defp put_given(map, _key, nil), do: map
  defp put_given(map, key, value), do: Map.put(map, key, value)

  # Piped, notices go to stderr so stdout holds only the answers. In a
  # terminal they go to stdout: stdout and stderr are written by different
  # BEAM processes, so a notice on stderr could reach the screen after the
  # next prompt ("you> " then "(stopped)").
  defp notice(%{tty?: true}, text), do: IO.puts(text)
  defp notice(_state, text), do: IO.puts(:stderr, text)

  defp notice(text), do: IO.puts(:stderr, text)
end
