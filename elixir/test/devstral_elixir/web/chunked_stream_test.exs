defmodule DevstralElixir.Web.ChunkedStreamTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Web.ChunkedStream

  test "a chunked frame is the hex size, CRLF, the data, CRLF" do
    data = ["data: ", "{\"a\":1}", "\n\n"]

    assert IO.iodata_to_binary(ChunkedStream.frame(data, :chunked)) ==
             "F\r\ndata: {\"a\":1}\n\n\r\n"
  end

  test "a close-delimited frame is the data itself" do
    assert IO.iodata_to_binary(ChunkedStream.frame(["data: x", "\n\n"], :close)) ==
             "data: x\n\n"
  end

  test "empty data is no bytes, never the zero-size chunk that ends a body" do
    assert IO.iodata_to_binary(ChunkedStream.frame([[], ""], :chunked)) == ""
    assert IO.iodata_to_binary(ChunkedStream.frame("", :close)) == ""
  end
end
