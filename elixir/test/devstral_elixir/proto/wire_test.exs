defmodule DevstralElixir.Proto.WireTest do
  use ExUnit.Case, async: true

  import Bitwise

  alias DevstralElixir.Proto.Wire

  doctest Wire

  describe "varints" do
    test "encode the documented examples" do
      assert Wire.encode_varint(0) == <<0>>
      assert Wire.encode_varint(1) == <<1>>
      assert Wire.encode_varint(127) == <<127>>
      assert Wire.encode_varint(128) == <<0x80, 1>>
      assert Wire.encode_varint(150) == <<0x96, 1>>
      assert Wire.encode_varint(0xFFFF_FFFF_FFFF_FFFF) == <<-1::72, 1>>
    end

    test "negative numbers are 10-byte two's complement" do
      assert Wire.encode_varint(-1) == <<-1::72, 1>>
      assert Wire.encode_varint(-2) == <<0xFE, -1::64, 1>>
      assert byte_size(Wire.encode_varint(-0x8000_0000)) == 10
      assert {:ok, n, ""} = Wire.decode_varint(Wire.encode_varint(-5))
      assert Wire.to_int64(n) == -5
      assert Wire.to_int32(n) == -5
    end

    test "round-trip across bit widths" do
      for shift <- 0..63, delta <- [-1, 0, 1], n = (1 <<< shift) + delta, n >= 0 do
        assert Wire.decode_varint(Wire.encode_varint(n) <> "rest") == {:ok, n, "rest"}
      end
    end

    test "decoding keeps the rest, and accepts overlong encodings" do
      assert Wire.decode_varint(<<0x96, 1, 7, 8>>) == {:ok, 150, <<7, 8>>}
      assert Wire.decode_varint(<<0x81, 0x80, 0x80, 0x00>>) == {:ok, 1, ""}
    end

    test "malformed varints are errors" do
      assert Wire.decode_varint(<<>>) == {:error, "truncated varint"}
      assert Wire.decode_varint(<<0x80>>) == {:error, "truncated varint"}
      assert Wire.decode_varint(<<-1::80, 1>>) == {:error, "varint longer than 10 bytes"}
    end

    test "32-bit views truncate" do
      assert Wire.to_uint32(0x1_0000_0005) == 5
      assert Wire.to_int32(0xFFFF_FFFF) == -1
      assert Wire.to_int32(0x7FFF_FFFF) == 0x7FFF_FFFF
      assert Wire.to_int64(0x8000_0000_0000_0000) == -0x8000_0000_0000_0000
    end
  end

  test "zigzag maps small magnitudes to small numbers" do
    assert Enum.map([0, -1, 1, -2, 2], &Wire.zigzag_encode/1) == [0, 1, 2, 3, 4]
    assert Wire.zigzag_encode(0x7FFF_FFFF) == 0xFFFF_FFFE
    assert Wire.zigzag_encode(-0x8000_0000) == 0xFFFF_FFFF
    assert Wire.zigzag_encode(-0x8000_0000_0000_0000) == 0xFFFF_FFFF_FFFF_FFFF

    for n <- [0, 1, -1, 12_345, -12_345, 0x7FFF_FFFF_FFFF_FFFF, -0x8000_0000_0000_0000] do
      assert n |> Wire.zigzag_encode() |> Wire.zigzag_decode() == n
    end
  end

  describe "fixed width" do
    test "integers are little-endian" do
      assert Wire.encode_fixed32(1) == <<1, 0, 0, 0>>
      assert Wire.encode_fixed32(-1) == <<0xFF, 0xFF, 0xFF, 0xFF>>
      assert Wire.encode_fixed64(0x0102) == <<2, 1, 0, 0, 0, 0, 0, 0>>
      assert Wire.decode_fixed32(<<1, 0, 0, 0, 9>>) == {:ok, 1, <<9>>}
      assert Wire.decode_fixed64(<<-1::64>>) == {:ok, 0xFFFF_FFFF_FFFF_FFFF, ""}
      assert Wire.decode_fixed32(<<1, 2, 3>>) == {:error, "truncated fixed32"}
      assert Wire.decode_fixed64(<<1, 2, 3>>) == {:error, "truncated fixed64"}
    end

    test "floats are IEEE 754, with atoms for the values the BEAM lacks" do
      assert Wire.encode_float(1.5) == <<0, 0, 0xC0, 0x3F>>
      assert Wire.encode_float(2) == Wire.encode_float(2.0)
      assert Wire.decode_float(<<0, 0, 0xC0, 0x3F>>) == {:ok, 1.5, ""}
      assert Wire.decode_double(Wire.encode_double(0.1)) == {:ok, 0.1, ""}
      {:ok, single, ""} = Wire.decode_float(Wire.encode_float(0.1))
      assert_in_delta single, 0.1, 1.0e-8

      for special <- [:infinity, :negative_infinity, :nan] do
        assert Wire.decode_float(Wire.encode_float(special)) == {:ok, special, ""}
        assert Wire.decode_double(Wire.encode_double(special)) == {:ok, special, ""}
      end

      # Any NaN payload is NaN; doubles too large for a float become infinite.
      assert Wire.decode_float(<<1, 0, 0x80, 0x7F>>) == {:ok, :nan, ""}
      assert Wire.encode_float(1.0e300) == Wire.encode_float(:infinity)
      assert Wire.decode_double(<<1, 2>>) == {:error, "truncated double"}
      assert Wire.decode_float(<<1, 2>>) == {:error, "truncated float"}
    end
  end

  describe "tags and lengths" do
    test "tags pack the field number and wire type" do
      assert Wire.encode_tag(1, 0) == <<0x08>>
      assert Wire.encode_tag(2, 2) == <<0x12>>
      assert Wire.decode_tag(<<0x12, 0xAA>>) == {:ok, 2, 2, <<0xAA>>}
      assert Wire.decode_tag(Wire.encode_tag(536_870_911, 5)) == {:ok, 536_870_911, 5, ""}
    end

    test "invalid keys are errors" do
      assert Wire.decode_tag(<<0x00>>) == {:error, "field number 0"}
      assert Wire.decode_tag(<<0x0E>>) == {:error, "invalid wire type 6"}
      assert Wire.decode_tag(<<0x0F>>) == {:error, "invalid wire type 7"}
      assert {:error, "field key " <> _} = Wire.decode_tag(Wire.encode_varint(1 <<< 40))
      assert Wire.decode_tag(<<0x80>>) == {:error, "field key: truncated varint"}
    end

    test "length-delimited values" do
      assert IO.iodata_to_binary(Wire.encode_length_delimited(["ab", ?c])) == <<3, "abc">>
      assert Wire.decode_length_delimited(<<3, "abcd">>) == {:ok, "abc", "d"}
      assert Wire.decode_length_delimited(<<0>>) == {:ok, "", ""}

      assert Wire.decode_length_delimited(<<5, "abc">>) ==
               {:error, "length 5 past the end (3 bytes left)"}

      assert Wire.decode_length_delimited(<<0x80>>) == {:error, "length: truncated varint"}
    end
  end

  describe "skip_field/3" do
    test "skips a value of every wire type" do
      assert Wire.skip_field(1, 0, <<0x96, 1, "rest">>) == {:ok, "rest"}
      assert Wire.skip_field(1, 1, <<0::64, "rest">>) == {:ok, "rest"}
      assert Wire.skip_field(1, 2, <<2, "ab", "rest">>) == {:ok, "rest"}
      assert Wire.skip_field(1, 5, <<0::32, "rest">>) == {:ok, "rest"}
    end

    test "skips groups up to the matching end, nested groups included" do
      # group 5 { field 1 varint, group 6 { field 2 bytes }, } rest
      inner = Wire.encode_tag(6, 3) <> <<0x12, 1, "x">> <> Wire.encode_tag(6, 4)
      body = <<0x08, 1>> <> inner <> Wire.encode_tag(5, 4)
      assert Wire.skip_field(5, 3, body <> "rest") == {:ok, "rest"}
      assert Wire.skip_field(5, 3, Wire.encode_tag(5, 4)) == {:ok, ""}
    end

    test "malformed groups and values are errors" do
      assert Wire.skip_field(5, 3, <<0x08, 1>>) == {:error, "unterminated group 5"}

      assert Wire.skip_field(5, 3, Wire.encode_tag(6, 4)) ==
               {:error, "end of group 6 inside group 5"}

      assert Wire.skip_field(5, 4, "") == {:error, "unexpected end of group 5"}
      assert Wire.skip_field(1, 0, <<0x80>>) == {:error, "truncated varint"}
      assert Wire.skip_field(1, 1, <<1>>) == {:error, "truncated fixed64"}
      assert Wire.skip_field(1, 5, <<1>>) == {:error, "truncated fixed32"}
      assert {:error, "length 9" <> _} = Wire.skip_field(1, 2, <<9, 1>>)
      assert Wire.skip_field(5, 3, <<0x0E>>) == {:error, "invalid wire type 6"}

      deep = String.duplicate(Wire.encode_tag(1, 3), 200)
      assert Wire.skip_field(1, 3, deep) == {:error, "groups nested deeper than 100"}
    end
  end
end
