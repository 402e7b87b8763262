/**
 * The sidebar widget: renders a `ClusterModel` with React, as JupyterLab's own panels do, and
 * turns clicks into the model's commands. Element classes and data attributes are the DOM
 * contract the browser tests read (labextension/README.md); colours come from style/index.css.
 */
import * as React from 'react';
import { ReactWidget } from '@jupyterlab/apputils';
import { closeIcon, LabIcon, refreshIcon, stopIcon } from '@jupyterlab/ui-components';
import type { PanelEngine, PanelTask, PanelView } from '../../kernel-ext/comm-messages';
import {
  ClusterModel,
  formatBytes,
  resourceUse,
  formatSeconds,
  shortId,
  taskSeconds,
  taskStream,
  waitsForText,
  type StreamBar,
} from './model';

/** The cluster icon of the sidebar tab: a controller linked to three engines. */
export const clusterIcon = new LabIcon({
  name: 'tsparallel:cluster',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<g class="jp-icon3" fill="#616161"><rect x="6" y="1" width="4" height="4" rx="1"/>' +
    '<rect x="1" y="11" width="4" height="4" rx="1"/><rect x="6" y="11" width="4" height="4" rx="1"/>' +
    '<rect x="11" y="11" width="4" height="4" rx="1"/>' +
    '<path d="M7.5 5h1v3H13v3h-1V9H8.5v2h-1V9H4v2H3V8h4.5z"/></g></svg>',
});

/** The sidebar panel; `id` is the contract's `tsparallel-panel`. */
export class ClusterPanel extends ReactWidget {
  constructor(private readonly model: ClusterModel) {
    super();
    this.id = 'tsparallel-panel';
    this.addClass('tsp-Panel');
    this.title.icon = clusterIcon;
    this.title.caption = 'Parallel cluster';
  }

  protected render(): React.ReactElement {
    return <PanelView model={this.model} />;
  }
}

/** Re-renders on every model change, and each second while a cluster runs (uptime, bars). */
function useModel(model: ClusterModel): number {
  const [, rerender] = React.useReducer((n: number) => n + 1, 0);
  React.useEffect(() => model.subscribe(rerender), [model]);
  const running = Boolean(model.state?.cluster);
  React.useEffect(() => {
    if (!running) return undefined;
    // A local clock only: the kernel sends a state whenever something changes.
    const timer = setInterval(rerender, 1000);
    return () => clearInterval(timer);
  }, [running]);
  return Date.now();
}

function PanelView({ model }: { model: ClusterModel }): React.ReactElement {
  const localNow = useModel(model);
  const reason = model.emptyReason();
  const state = model.state;
  const now = model.kernelTime(localNow);
  return (
    <div className="tsp-Panel-body">
      <header className="tsp-Panel-header">Parallel cluster</header>
      {reason && <p className="tsp-empty">{reason}</p>}
      {model.error && (
        <p className="tsp-Panel-error" role="alert">
          {model.error}{' '}
          <button className="tsp-Panel-link" onClick={() => model.dismissError()}>
            dismiss
          </button>
        </p>
      )}
      {model.phase === 'connected' && <ClusterSection model={model} localNow={localNow} />}
      {state?.cluster && (
        <>
          <EnginesSection model={model} engines={state.engines} />
          <MapsSection model={model} />
          <section className="tsp-Panel-section tsp-stream">
            <h3>Task stream</h3>
            <TaskStreamChart model={model} now={now} />
          </section>
          <ViewsSection views={state.views} targets={state.targets} />
          <TasksSection model={model} tasks={state.tasks} now={now} />
        </>
      )}
    </div>
  );
}

function ClusterSection(props: { model: ClusterModel; localNow: number }): React.ReactElement {
  const { model } = props;
  const cluster = model.state?.cluster ?? null;
  const live = model.liveEngines().length;
  const [count, setCount] = React.useState('2');
  const n = Number(count);
  const valid = count.trim() !== '' && Number.isInteger(n) && n >= 0;
  const busy = model.clusterBusy();
  const button = (
    action: string,
    label: string,
    title: string,
    run: () => void,
    enabled = true,
  ) => (
    <button
      key={action}
      className="jp-Button jp-mod-styled tsp-Panel-button"
      data-action={action}
      title={title}
      disabled={busy || !enabled}
      onClick={run}
    >
      {label}
    </button>
  );
  return (
    <section className="tsp-Panel-section tsp-cluster">
      {cluster && (
        <dl className="tsp-Panel-facts">
          <dt>Controller</dt>
          <dd data-field="controller" title={cluster.controller}>
            {cluster.controller}
          </dd>
          <dt>Launcher</dt>
          <dd data-field="launcher">{cluster.launcher ?? 'connected (not started here)'}</dd>
          <dt>Uptime</dt>
          <dd data-field="uptime">{formatSeconds(model.uptime(props.localNow))}</dd>
        </dl>
      )}
      <div className="tsp-Panel-controls">
        <label>
          Engines{' '}
          <input
            className="jp-mod-styled tsp-Panel-count"
            name="engines"
            type="number"
            min={0}
            value={count}
            onChange={(e) => setCount(e.target.value)}
          />
        </label>
        {cluster
          ? [
              button(
                'cluster-scale',
                'Scale',
                `Start or stop engines until there are ${count}`,
                () => model.run({ type: 'cluster:scale', engines: n }),
                valid,
              ),
              button('engine-add', '+1', 'Start one more engine', () =>
                model.run({ type: 'engine:add', count: 1 }),
              ),
              button(
                'engine-remove',
                '−1',
                'Stop one engine (an idle one first)',
                () => model.run({ type: 'cluster:scale', engines: live - 1 }),
                live > 0,
              ),
              button('cluster-stop', 'Stop', 'Stop the controller and every engine', () =>
                model.run({ type: 'cluster:stop' }),
              ),
            ]
          : button(
              'cluster-start',
              'Start',
              `Start a controller and ${count} local engines`,
              () => model.run({ type: 'cluster:start', engines: n }),
              valid,
            )}
        {busy && <span className="tsp-Panel-working">working…</span>}
      </div>
    </section>
  );
}

function EnginesSection(props: {
  model: ClusterModel;
  engines: PanelEngine[];
}): React.ReactElement {
  const { model } = props;
  const action = (
    e: PanelEngine,
    name: 'stop' | 'restart' | 'interrupt',
    icon: LabIcon,
    title: string,
  ) => (
    <button
      className="tsp-Panel-iconButton"
      data-action={`engine-${name}`}
      title={`${title} engine ${e.id}`}
      aria-label={`${title} engine ${e.id}`}
      disabled={model.waiting(`engine:${name}`, e.id) || e.status === 'restarting'}
      onClick={() => model.run({ type: `engine:${name}`, id: e.id })}
    >
      <icon.react tag="span" />
    </button>
  );
  // Memory bars share one scale, so engines compare at a glance.
  const memoryScale = Math.max(MIN_MEMORY_SCALE, ...props.engines.map((e) => e.memory ?? 0));
  return (
    <section className="tsp-Panel-section tsp-engines">
      <h3>Engines</h3>
      {props.engines.length === 0 && (
        <p className="tsp-Panel-note">No engines yet: add some above.</p>
      )}
      {props.engines.map((e) => (
        <div
          key={e.id}
          className={`tsp-Panel-engineRow jp-mod-${e.status}`}
          data-engine-id={e.id}
          data-status={e.status}
        >
          <div className="tsp-Panel-engineHead">
            <span className="tsp-Panel-engineId">engine {e.id}</span>
            <span className={`tsp-Panel-status jp-mod-${e.status}`}>{e.status}</span>
            {e.replacedBy !== null && (
              <span className="tsp-Panel-note">→ engine {e.replacedBy}</span>
            )}
            {e.status !== 'dead' && (
              <span className="tsp-Panel-actions">
                {action(e, 'interrupt', stopIcon, 'Interrupt the task of')}
                {action(e, 'restart', refreshIcon, 'Restart')}
                {action(e, 'stop', closeIcon, 'Stop')}
              </span>
            )}
          </div>
          <div className="tsp-Panel-engineFacts">
            <span data-field="host" title="host">
              {e.host}
            </span>
            <span data-field="pid">pid {e.pid}</span>
            <span data-field="queue" title="tasks queued or running">
              queue {e.queue}
            </span>
            <span data-field="done" title="tasks done">
              done {e.completed}
            </span>
            <span data-field="task" title={e.currentTask ?? ''}>
              {e.currentTask ? `runs ${shortId(e.currentTask)}` : ''}
            </span>
          </div>
          {e.status !== 'dead' && (
            <div className="tsp-Panel-meters">
              <Meter
                field="cpu"
                label="CPU"
                value={e.cpu}
                fraction={(e.cpu ?? 0) / 100}
                text={e.cpu === null ? '–' : `${e.cpu}%`}
                title="CPU use of the engine process, percent of one core"
              />
              <Meter
                field="memory"
                label="mem"
                value={e.memory}
                fraction={(e.memory ?? 0) / memoryScale}
                text={e.memory === null ? '–' : formatBytes(e.memory)}
                title="Resident memory of the engine process"
              />
              {resourceUse(e).map((r) => (
                <Meter
                  key={r.name}
                  field={`resource-${r.name}`}
                  label={r.name}
                  value={r.inUse}
                  fraction={r.fraction}
                  text={r.text.slice(r.name.length + 1)}
                  title={`${r.name}: in use by the engine's tasks / declared (--resources)`}
                />
              ))}
            </div>
          )}
        </div>
      ))}
    </section>
  );
}

/** The memory bars' full width is at least this many bytes. */
const MIN_MEMORY_SCALE = 256 * 1024 * 1024;

/** A labelled bar for one measure of an engine; `fraction` is clamped to 0..1. */
function Meter(props: {
  field: string;
  label: string;
  value: number | null;
  fraction: number;
  text: string;
  title: string;
}): React.ReactElement {
  const percent = Math.round(Math.min(1, Math.max(0, props.fraction)) * 100);
  return (
    <span
      className="tsp-Panel-meter"
      data-field={props.field}
      data-value={props.value ?? ''}
      title={props.title}
    >
      <span className="tsp-Panel-meterLabel">{props.label}</span>
      <span className="tsp-Panel-meterTrack">
        <span className="tsp-Panel-meterFill" style={{ width: `${percent}%` }} />
      </span>
      <span className="tsp-Panel-meterText">{props.text}</span>
    </span>
  );
}

function MapsSection({ model }: { model: ClusterModel }): React.ReactElement | null {
  const maps = model.mapProgress();
  if (maps.length === 0) return null;
  return (
    <section className="tsp-Panel-section tsp-maps">
      <h3>Maps</h3>
      {maps.map(({ map, fraction, running }) => (
        <div
          key={map.id}
          className="tsp-Panel-map"
          data-map-id={map.id}
          data-done={map.done + map.failed}
          data-total={map.total}
          data-running={running}
        >
          <span className="tsp-Panel-mapName">
            map {map.id} {map.view === 'direct' ? 'D' : 'LB'}
          </span>
          <span
            className="tsp-Panel-meterTrack"
            role="progressbar"
            aria-valuemin={0}
            aria-valuemax={map.total}
            aria-valuenow={map.done + map.failed}
          >
            <span
              className={`tsp-Panel-meterFill${map.failed > 0 ? ' jp-mod-error' : ''}`}
              style={{ width: `${Math.round(fraction * 100)}%` }}
            />
          </span>
          <span className="tsp-Panel-meterText">
            {map.done + map.failed}/{map.total}
            {map.failed > 0 && ` (${map.failed} failed)`}
          </span>
        </div>
      ))}
    </section>
  );
}

const LANE = 24;
const LABEL = 28;
const AXIS = 16;
const STATES = ['pending', 'done', 'error'] as const;

/**
 * The width `ref`'s element has, followed as the sidebar is resized: the chart draws in pixels
 * rather than scaling a fixed drawing, whose text would grow with the sidebar.
 */
function useWidth(ref: React.RefObject<Element | null>, initial: number): number {
  const [width, setWidth] = React.useState(initial);
  React.useEffect(() => {
    const element = ref.current;
    if (!element) return;
    const observer = new ResizeObserver(([entry]) => setWidth(Math.floor(entry.contentRect.width)));
    observer.observe(element);
    return () => observer.disconnect();
  }, [ref]);
  return width;
}

function TaskStreamChart(props: { model: ClusterModel; now: number }): React.ReactElement {
  const ref = React.useRef<HTMLDivElement>(null);
  const width = Math.max(LABEL + 50, useWidth(ref, 200));
  const [hovered, setHovered] = React.useState<{ bar: StreamBar; top: number } | null>(null);
  const state = props.model.state!;
  const stream = taskStream(state, props.now, width - LABEL);
  const lanesHeight = Math.max(1, stream.lanes.length) * LANE;
  // The hovered bar as it is now: it grows while it runs, and goes when it is cleared.
  const tip = hovered && stream.lanes.flatMap((l) => l.bars).find((b) => b.id === hovered.bar.id);
  return (
    <div className="tsp-TaskStream" ref={ref}>
      <div className="tsp-TaskStream-legend">
        {STATES.map((s) => (
          <span key={s} className="tsp-TaskStream-key">
            <span className={`tsp-TaskStream-swatch jp-mod-${s}`} />
            {s}
          </span>
        ))}
      </div>
      <svg
        className="tsp-task-stream"
        width={width}
        height={lanesHeight + AXIS}
        role="img"
        aria-label="Task stream: one lane per engine, one bar per task over time"
        onMouseLeave={() => setHovered(null)}
      >
        {stream.lanes.map((lane, i) => (
          <g key={lane.engine} data-lane={lane.engine} transform={`translate(0 ${i * LANE})`}>
            <text className="tsp-TaskStream-label" x={0} y={LANE / 2 + 4}>
              {lane.engine}
            </text>
            <line className="tsp-TaskStream-lane" x1={LABEL} x2={width} y1={LANE} y2={LANE} />
            {lane.bars.map((b) => (
              <rect
                key={b.id}
                className={`tsp-TaskStream-bar jp-mod-${b.state}`}
                data-task-id={b.id}
                data-state={b.state}
                x={LABEL + b.x}
                y={3}
                width={b.width}
                height={LANE - 6}
                onMouseEnter={() => setHovered({ bar: b, top: i * LANE })}
              />
            ))}
          </g>
        ))}
        <g className="tsp-TaskStream-axis" transform={`translate(${LABEL} ${lanesHeight})`}>
          {stream.lanes.length === 0 && (
            <text className="tsp-TaskStream-label" x={0} y={AXIS - 3}>
              no engines
            </text>
          )}
          {stream.ticks.map((t) => (
            <g key={t.label} transform={`translate(${t.x} 0)`}>
              <line className="tsp-TaskStream-tick" y1={0} y2={4} />
              <text
                className="tsp-TaskStream-label"
                y={AXIS - 3}
                textAnchor={t.x > width - LABEL - 20 ? 'end' : t.x < 20 ? 'start' : 'middle'}
              >
                {t.label}
              </text>
            </g>
          ))}
        </g>
      </svg>
      {hovered && tip && (
        <div
          className="tsp-TaskStream-tip"
          role="tooltip"
          data-task-id={tip.id}
          style={{ top: hovered.top + LANE + 18 }}
        >
          {tip.summary}
        </div>
      )}
    </div>
  );
}

function ViewsSection(props: { views: PanelView[]; targets: string }): React.ReactElement {
  return (
    <section className="tsp-Panel-section tsp-views">
      <h3>Views</h3>
      <p className="tsp-Panel-note">
        %px runs on <code data-field="targets">{props.targets}</code>
      </p>
      {props.views.length > 0 && (
        <table className="tsp-Panel-table">
          <thead>
            <tr>
              <th>view</th>
              <th>kind</th>
              <th>targets</th>
              <th>tasks</th>
            </tr>
          </thead>
          <tbody>
            {props.views.map((v) => (
              <tr key={v.id} data-view-id={v.id} data-kind={v.actor ? 'actor' : v.kind}>
                <td>{v.id}</td>
                {v.actor ? (
                  <>
                    <td data-field="actor-class">actor {v.actor.className}</td>
                    <td data-field="actor-engine">engine {v.actor.engine}</td>
                    <td data-field="actor-calls" title="calls done">
                      {v.actor.calls} calls done
                    </td>
                  </>
                ) : (
                  <>
                    <td>{v.kind === 'direct' ? 'direct' : 'load-balanced'}</td>
                    <td>
                      {v.targets === null
                        ? 'any'
                        : v.targets === 'all'
                          ? 'all'
                          : v.targets.join(', ')}
                    </td>
                    <td>{v.tasks}</td>
                  </>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function TasksSection(props: {
  model: ClusterModel;
  tasks: PanelTask[];
  now: number;
}): React.ReactElement {
  const { model } = props;
  // Newest first: the task a person just sent is the one they look for.
  const tasks = [...props.tasks].reverse();
  return (
    <section className="tsp-Panel-section tsp-tasks">
      <h3>
        Tasks
        <button
          className="tsp-Panel-link"
          data-action="tasks-clear"
          title="Forget finished tasks and maps; running ones stay"
          disabled={!model.hasFinished() || model.waiting('tasks:clear')}
          onClick={() => model.clearFinished()}
        >
          clear finished
        </button>
      </h3>
      {tasks.length === 0 ? (
        <p className="tsp-Panel-note">No tasks yet: run a %%px cell or a view's map.</p>
      ) : (
        <table className="tsp-Panel-table">
          <thead>
            <tr>
              <th>task</th>
              <th title="engine">eng</th>
              <th>state</th>
              <th>time</th>
              <th>result</th>
            </tr>
          </thead>
          <tbody>
            {tasks.map((t) => (
              <TaskRows key={t.id} model={model} task={t} now={props.now} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function TaskRows(props: {
  model: ClusterModel;
  task: PanelTask;
  now: number;
}): React.ReactElement {
  const { model, task: t } = props;
  const open = model.expanded.has(t.id);
  const slot = model.outputs.get(t.id);
  const waits = waitsForText(t);
  return (
    <>
      <tr
        className={`tsp-Panel-taskRow jp-mod-${t.state}${open ? ' jp-mod-expanded' : ''}`}
        data-task-id={t.id}
        data-state={t.state}
        data-view={t.view}
        data-engine={t.engine ?? ''}
        title={t.label ?? t.id}
        aria-expanded={open}
        tabIndex={0}
        onClick={() => model.toggle(t.id)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' || e.key === ' ') {
            e.preventDefault();
            model.toggle(t.id);
          }
        }}
      >
        <td className="tsp-Panel-taskId">
          {shortId(t.id)}{' '}
          <span
            className="tsp-Panel-kind"
            title={t.view === 'direct' ? 'direct view' : 'load-balanced view'}
          >
            {t.view === 'direct' ? 'D' : 'LB'}
          </span>
        </td>
        <td>{t.engine ?? '…'}</td>
        <td>
          <span className={`tsp-Panel-status jp-mod-${t.state}`}>{t.state}</span>
        </td>
        <td className="tsp-Panel-time">{formatSeconds(taskSeconds(t, props.now))}</td>
        {waits ? (
          <td
            className="tsp-preview jp-mod-waiting"
            title={t.waitsFor.map((w) => w.label ?? w.id).join('\n')}
          >
            {waits}
          </td>
        ) : (
          <td className="tsp-preview">{t.errorPreview ?? t.resultPreview ?? ''}</td>
        )}
      </tr>
      {open && (
        <tr className="tsp-Panel-outputRow">
          <td colSpan={5}>
            <TaskOutput slot={slot} />
          </td>
        </tr>
      )}
    </>
  );
}

function TaskOutput({ slot }: { slot: ReturnType<ClusterModel['outputs']['get']> }) {
  if (!slot || slot.status === 'loading') {
    return <div className="tsp-task-output tsp-Panel-note">loading…</div>;
  }
  if (slot.status === 'failed') {
    return <div className="tsp-task-output tsp-Panel-error">{slot.error}</div>;
  }
  const o = slot.output;
  const parts: [string, string | null][] = [
    ['stdout', o.stdout || null],
    ['stderr', o.stderr || null],
    ['data', o.data],
    ['result', o.result],
    ['error', o.error],
  ];
  const shown = parts.filter((p): p is [string, string] => p[1] !== null && p[1] !== '');
  return (
    <div className="tsp-task-output">
      {shown.length === 0 && <span className="tsp-Panel-note">no output</span>}
      {shown.map(([name, text]) => (
        <div key={name} className={`tsp-Panel-output jp-mod-${name}`}>
          <span className="tsp-Panel-outputName">{name}</span>
          <pre>{text}</pre>
        </div>
      ))}
      {o.truncated && <span className="tsp-Panel-note">(cut short)</span>}
    </div>
  );
}
