"""A Pipecat phone bot for the side-by-side bench (bench/peers/pipecat/README.md).

It answers the carrier's media WebSocket at /telnyx/media the way `hermes sim --target` calls
it (Telnyx media streaming: `connected`, `start`, then 20 ms PCMU frames), and runs one Pipecat
pipeline per call, all calls in this one process and event loop, as a Pipecat server does:

    transport in -> Deepgram STT -> user aggregator (Silero VAD + turn stop strategy)
      -> Anthropic LLM (tools) -> ElevenLabs TTS -> transport out -> assistant aggregator

Deepgram, Anthropic and ElevenLabs are `hermes fakes` on loopback (the same fakes Hermes
runs against); the business's prompt, tools, greeting and goodbye come from the fakes'
back office (`GET /agent`), and each tool call is answered by it (`POST /tools/NAME`), as a
real bot's tools call the business's booking system.

Every setting that differs from Pipecat's defaults is marked NON-DEFAULT below.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import zoneinfo

import aiohttp
import uvicorn
from anthropic import AsyncAnthropic
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    Frame,
    FunctionCallResultProperties,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.telnyx import TelnyxFrameSerializer
from pipecat.services.anthropic.llm import AnthropicLLMService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.llm_service import FunctionCallParams
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.turns.user_stop import (
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

# The phone line: 8 kHz both ways, as Pipecat's telephony examples set it (NON-DEFAULT:
# PipelineParams defaults to 16 kHz in, 24 kHz out).
SAMPLE_RATE = 8000
# The same models and voice Hermes's configuration names (the fakes ignore them).
LLM_MODEL = "claude-sonnet-5-5"
LLM_MAX_TOKENS = 400
TTS_MODEL = "eleven_flash_v2_5"
TTS_VOICE = "21m00Tcm4TlvDq8ikWAM"


class Settings:
    """Where the fakes are and which turn-taking this process runs, from the command line."""

    def __init__(self, args: argparse.Namespace):
        self.llm_url = args.llm_url
        self.stt_url = args.stt_url
        self.tts_url = args.tts_url
        self.office_url = args.office_url.rstrip("/")
        self.turn = args.turn
        self.key = os.environ.get("PIPECAT_BENCH_FAKE_KEY", "fake")
        self.agent: dict = {}


def clock_line(timezone: str) -> str:
    """The current local time, told to the model with every request as Hermes tells it."""
    now = datetime.datetime.now(zoneinfo.ZoneInfo(timezone))
    said = now.strftime("%A, %B %d, %Y, %I:%M %p").replace(" 0", " ")
    return f"Current local time: {said} ({now:%Y-%m-%dT%H:%M}, {timezone})."


def tools_schema(agent: dict) -> ToolsSchema:
    functions = [
        FunctionSchema(
            name=t["name"],
            description=t["description"],
            properties=t["parameters"].get("properties", {}),
            required=t["parameters"].get("required", []),
        )
        for t in agent["tools"]
    ]
    return ToolsSchema(standard_tools=functions)


def turn_strategies(turn: str) -> UserTurnStrategies:
    if turn == "smart-turn":
        # Pipecat's own default since 1.0: Smart-Turn v3 (ONNX, on this CPU) decides the end
        # of the turn from the audio, on each VAD pause.
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import (
            LocalSmartTurnAnalyzerV3,
        )

        stop = [TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())]
    else:
        # NON-DEFAULT: the classic VAD + silence endpointing (0.6 s after the VAD's stop,
        # Pipecat's default timeout), the counterpart of Hermes's VAD endpointing.
        stop = [SpeechTimeoutUserTurnStopStrategy()]
    return UserTurnStrategies(stop=stop)


class HangUp(FrameProcessor):
    """Ends the call once the agent's last words have played, as a carrier hang-up would: the
    media stream closes (the serializer's own hang-up calls the real Telnyx API, so it is off,
    and an EndFrame through this pipeline did not close the stream in Pipecat 1.14)."""

    def __init__(self, websocket: WebSocket):
        super().__init__()
        self.armed = False
        self._websocket = websocket

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if self.armed and isinstance(frame, BotStoppedSpeakingFrame):
            self.armed = False
            await self._websocket.close()
        await self.push_frame(frame, direction)


async def run_call(
    websocket: WebSocket, start: dict, settings: Settings, http: aiohttp.ClientSession
):
    media = start.get("start", {})
    call_id = media.get("call_control_id", "")
    caller = media.get("from", "")
    agent = settings.agent

    serializer = TelnyxFrameSerializer(
        stream_id=start.get("stream_id", ""),
        outbound_encoding="PCMU",
        inbound_encoding="PCMU",
        call_control_id=call_id,
        # NON-DEFAULT: no hang-up through Telnyx's REST API (it would call the real Telnyx);
        # the bot ends a call by closing its media stream, as Hermes does against a --target.
        params=TelnyxFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
        ),
    )
    # NON-DEFAULT: base_url (the fake) and tag (the call id, so the fake transcriber knows
    # which caller's lines it hears; Deepgram bills by tag). Everything else is Pipecat's
    # default: nova-3-general, linear16 at the pipeline's 8 kHz, interim results, Finalize on
    # the VAD's stop.
    stt = DeepgramSTTService(api_key=settings.key, base_url=settings.stt_url, tag=call_id)
    llm = AnthropicLLMService(
        api_key=settings.key,
        # NON-DEFAULT: the SDK client pointed at the fake.
        client=AsyncAnthropic(api_key=settings.key, base_url=settings.llm_url),
        settings=AnthropicLLMService.Settings(
            system_instruction=agent["system_prompt"] + "\n" + clock_line(agent["timezone"]),
            model=LLM_MODEL,
            max_tokens=LLM_MAX_TOKENS,  # NON-DEFAULT (4096): Hermes's phone-length cap
            enable_prompt_caching=True,  # NON-DEFAULT: Hermes caches its prompt too
        ),
    )
    tts = ElevenLabsTTSService(
        api_key=settings.key,
        url=settings.tts_url,  # NON-DEFAULT: the fake
        settings=ElevenLabsTTSService.Settings(voice=TTS_VOICE, model=TTS_MODEL),
    )

    context = LLMContext(tools=tools_schema(agent))
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(),
            user_turn_strategies=turn_strategies(settings.turn),
        ),
    )
    hang_up = HangUp(websocket)
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            aggregators.user(),
            llm,
            tts,
            transport.output(),
            hang_up,
            aggregators.assistant(),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        enable_rtvi=False,  # NON-DEFAULT: no browser client on a phone line
    )

    async def business_tool(params: FunctionCallParams):
        body = {"arguments": params.arguments, "call_id": call_id, "caller": caller}
        url = f"{settings.office_url}/tools/{params.function_name}"
        try:
            async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as r:
                answer = await r.json(content_type=None)
            output = answer.get("output", "")
            try:
                result = json.loads(output)
            except ValueError:
                result = output
            if answer.get("is_error"):
                result = {"error": output}
        except (aiohttp.ClientError, TimeoutError) as e:
            result = {"error": f"the booking system did not answer: {e}"}
        await params.result_callback(result)

    # The call's last words; once they have played, `hang_up` ends the call. No model turn
    # after these tools' results: the call is over.
    last_turn = FunctionCallResultProperties(run_llm=False)

    async def end_call(params: FunctionCallParams):
        await params.result_callback({"ok": True}, properties=last_turn)
        hang_up.armed = True
        await worker.queue_frames([TTSSpeakFrame(agent["goodbye"])])

    async def transfer(params: FunctionCallParams):
        await params.result_callback({"ok": True}, properties=last_turn)
        hang_up.armed = True
        await worker.queue_frames([TTSSpeakFrame(agent["escalation_line"])])

    for tool in agent["tools"]:
        name = tool["name"]
        handler = {"end_call": end_call, "transfer_to_human": transfer}.get(name, business_tool)
        llm.register_function(name, handler)

    @transport.event_handler("on_client_connected")
    async def greet(_transport, _client):
        # The persona's greeting, said at once (no model round trip), as Hermes says it.
        await worker.queue_frames([TTSSpeakFrame(agent["greeting"])])

    @transport.event_handler("on_client_disconnected")
    async def hung_up(_transport, _client):
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def make_app(settings: Settings) -> FastAPI:
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        state["http"] = aiohttp.ClientSession()
        async with state["http"].get(f"{settings.office_url}/agent") as r:
            settings.agent = await r.json(content_type=None)
        logger.info(f"agent for {settings.agent['business']}, turn-taking: {settings.turn}")
        yield
        await state["http"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    @app.websocket("/telnyx/media")
    async def media(websocket: WebSocket):
        await websocket.accept()
        # Telnyx opens with `connected`, then `start` (stream and call ids, media format).
        start = None
        for _ in range(4):
            message = json.loads(await websocket.receive_text())
            if message.get("event") == "start":
                start = message
                break
        if start is None:
            await websocket.close(code=1008)
            return
        await run_call(websocket, start, settings, state["http"])

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:7500", help="HOST:PORT to serve on")
    parser.add_argument("--llm-url", default="http://127.0.0.1:7400")
    parser.add_argument("--stt-url", default="ws://127.0.0.1:7401")
    parser.add_argument("--tts-url", default="ws://127.0.0.1:7402")
    parser.add_argument("--office-url", default="http://127.0.0.1:7404")
    parser.add_argument("--turn", choices=["vad", "smart-turn"], default="vad")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("PIPECAT_BENCH_LOG", "WARNING"))
    host, port = args.listen.rsplit(":", 1)
    uvicorn.run(make_app(Settings(args)), host=host, port=int(port), log_level="warning")


if __name__ == "__main__":
    main()
