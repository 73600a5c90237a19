defmodule DevstralElixir.Web.Appmod do
  @moduledoc """
  The yaws appmod: turns a yaws `#arg{}` into a `DevstralElixir.Web.Request`,
  asks `DevstralElixir.Web.Router` for a response and hands it back to yaws.

  A router may answer `{:stream, status, headers, pid}` with a process started
  by `DevstralElixir.Web.ChunkedStream.start/2`; yaws then hands it the socket
  and it writes the body. The appmod picks the body's framing from the
  request's HTTP version and tells both yaws (the headers) and the process
  (the bytes): chunked with `Transfer-Encoding: chunked` for HTTP/1.1, or
  close-delimited with `Connection: close` for HTTP/1.0, never a mix.
  """
  require Record

  Record.defrecordp(:arg, Record.extract(:arg, from_lib: "yaws/include/yaws_api.hrl"))

  Record.defrecordp(
    :http_request,
    Record.extract(:http_request, from_lib: "yaws/include/yaws_api.hrl")
  )

  Record.defrecordp(
    :yaws_headers,
    Record.extract(:headers, from_lib: "yaws/include/yaws_api.hrl")
  )

  alias DevstralElixir.Web.{Json, Request, Router}

  @doc false
  @spec out(tuple()) :: list() | tuple()
  def out(arg) do
    context = context(arg)

    case request(arg, context) do
      {:ok, request} -> respond(Router.route(request, context), arg)
      {:error, response} -> respond(response, arg)
    end
  end

  defp context(arg) do
    {:context, context} = List.keyfind(arg(arg, :opaque), :context, 0)
    context
  end

  defp request(arg, context) do
    http_request(method: method, path: {:abs_path, raw_path}) = arg(arg, :req)
    body = clidata(arg(arg, :clidata))

    if byte_size(body) > context.max_body_bytes do
      {:error, Json.error(413, "request body over #{context.max_body_bytes} bytes")}
    else
      %URI{path: path, query: query} = URI.parse(to_string(raw_path))
      {peer, _port} = arg(arg, :client_ip_port)

      {:ok,
       %Request{
         method: method |> to_string() |> String.upcase(),
         path: path |> to_string() |> String.split("/", trim: true),
         query: if(query, do: URI.decode_query(query), else: %{}),
         headers: header_map(arg(arg, :headers)),
         body: body,
         peer: peer
       }}
    end
  end

  defp clidata(data) when is_binary(data), do: data
  defp clidata(_), do: ""

  defp header_map(h) do
    known = [
      {"authorization", yaws_headers(h, :authorization)},
      {"content-type", yaws_headers(h, :content_type)},
      {"accept", yaws_headers(h, :accept)},
      {"host", yaws_headers(h, :host)},
      {"cookie", cookie(yaws_headers(h, :cookie))}
    ]

    others =
      for {:http_header, _, name, _, value} <- yaws_headers(h, :other) do
        {name |> to_string() |> String.downcase(), to_string(value)}
      end

    for {name, value} <- known ++ others, value not in [nil, :undefined], into: %{} do
      {name, header_value(value)}
    end
  end

  # yaws keeps each Cookie header apart.
  defp cookie([]), do: nil
  defp cookie(values) when is_list(values), do: Enum.map_join(values, "; ", &to_string/1)
  defp cookie(_), do: nil

  # yaws keeps the Authorization header parsed as {User, Pass, Raw}.
  defp header_value({_user, _pass, raw}), do: to_string(raw)
  defp header_value(value), do: to_string(value)

  # Plain `{:header, _}` items rather than `:allheaders`: `:allheaders` clears
  # what yaws derived from the request (keep-alive, chunking) and forces
  # `Connection: close` on every response.
  defp respond({status, headers, body}, _arg) do
    {content_type, others} = split_content_type(headers)
    [{:status, status} | header_items(others)] ++ [{:content, to_charlist(content_type), body}]
  end

  defp respond({:stream, status, headers, pid}, arg) do
    {content_type, others} = split_content_type(headers)
    framing = framing(arg)
    send(pid, {:socket, arg(arg, :clisock), framing})

    [{:status, status}, framing_header(framing) | header_items(others)] ++
      [{:streamcontent_from_pid, to_charlist(content_type), pid}]
  end

  # HTTP/1.1 clients get a chunked body (the connection can stay open); older
  # ones cannot read chunks, so their body ends when the server closes.
  defp framing(arg) do
    case http_request(arg(arg, :req), :version) do
      {1, 1} -> :chunked
      _older -> :close
    end
  end

  defp framing_header(:chunked), do: {:header, {:transfer_encoding, 'chunked'}}
  defp framing_header(:close), do: {:header, {:connection, 'close'}}

  defp header_items(headers) do
    for {name, value} <- headers, do: {:header, {to_charlist(name), to_charlist(value)}}
  end

  defp split_content_type(headers) do
    case List.keytake(headers, "content-type", 0) do
      {{_, value}, rest} -> {value, rest}
      nil -> {"application/octet-stream", headers}
    end
  end
end
