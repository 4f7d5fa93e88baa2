// gpupix report.html: sortable table, pages of cards, the larger view of a thumbnail.
// Inlined into the page by render.py; no network, no libraries.
(function(){
'use strict';
var cardsBox=document.getElementById('cards');
var PAGE=parseInt(cardsBox?cardsBox.getAttribute('data-page-size'):'50',10)||50;
function val(row,col,num){var c=row.cells[col];var v=c.getAttribute('data-v');
 if(v===null)v=c.textContent;if(!num)return v.toLowerCase();
 var f=parseFloat(v);return isNaN(f)?null:f;}
document.querySelectorAll('table.sortable').forEach(function(table){
 var heads=table.tHead.rows[0].cells;
 Array.prototype.forEach.call(heads,function(th,col){
  th.addEventListener('click',function(){
   var dir=th.getAttribute('data-dir')==='asc'?'desc':'asc';
   Array.prototype.forEach.call(heads,function(o){o.removeAttribute('data-dir');});
   th.setAttribute('data-dir',dir);
   var num=th.getAttribute('data-type')==='num',body=table.tBodies[0];
   var rows=Array.prototype.slice.call(body.rows),sign=dir==='asc'?1:-1;
   rows.sort(function(a,b){var x=val(a,col,num),y=val(b,col,num);
    if(x===y)return 0;if(x===null)return 1;if(y===null)return -1;
    return (x<y?-1:1)*sign;});
   rows.forEach(function(r){body.appendChild(r);});
  });
 });
});
var cards=Array.prototype.slice.call(document.querySelectorAll('#cards > .card'));
var pages=Math.max(1,Math.ceil(cards.length/PAGE)),current=-1;
function show(page){
 if(page===current)return;current=page;
 cards.forEach(function(card,i){card.hidden=Math.floor(i/PAGE)!==page;});
 document.querySelectorAll('.pager').forEach(function(pager){
  pager.textContent='';if(pages<2)return;
  for(var p=0;p<pages;p++){var b=document.createElement('button');
   b.textContent=String(p+1);b.disabled=p===page;
   b.addEventListener('click',(function(q){return function(){show(q);
    document.getElementById('images').scrollIntoView();};})(p));
   pager.appendChild(b);}
 });
}
function fromHash(){var id=location.hash.slice(1);var el=id&&document.getElementById(id);
 if(el&&el.classList.contains('card')){show(Math.floor(cards.indexOf(el)/PAGE));
  el.scrollIntoView();}}
show(0);fromHash();window.addEventListener('hashchange',fromHash);
// The larger view: the panel's crop of its card's view sprite, scaled to fit the window
// (enlarged by a whole factor up to 8, pixels kept sharp, when the picture is small).
function closeView(){var box=document.getElementById('lightbox');if(box)box.remove();}
function openView(link){
 closeView();
 var w=+link.getAttribute('data-vw'),h=+link.getAttribute('data-vh'),
  x=+link.getAttribute('data-vx'),sw=+link.getAttribute('data-sw'),
  sh=+link.getAttribute('data-sh');
 var fit=Math.min((window.innerWidth-40)/w,(window.innerHeight-90)/h);
 var scale=fit>=1?Math.min(8,Math.floor(fit)):fit;
 var box=document.createElement('div');box.id='lightbox';
 var crop=document.createElement('span');crop.className='crop';
 crop.style.width=Math.round(w*scale)+'px';crop.style.height=Math.round(h*scale)+'px';
 var img=document.createElement('img');img.src=link.getAttribute('data-view');
 img.alt=link.getAttribute('data-label')||'';
 img.width=Math.round(sw*scale);img.height=Math.round(sh*scale);
 img.style.marginLeft='-'+Math.round(x*scale)+'px';if(scale>1)img.className='px';
 crop.appendChild(img);box.appendChild(crop);
 var caption=document.createElement('p');
 caption.textContent=(img.alt?img.alt+' \u2014 ':'')+w+'\u00d7'+h+' px view. ';
 var full=link.getAttribute('data-full');
 if(full){var a=document.createElement('a');a.href=full;a.textContent='open the file';
  a.addEventListener('click',function(e){e.stopPropagation();});caption.appendChild(a);}
 box.appendChild(caption);
 box.addEventListener('click',closeView);
 document.body.appendChild(box);
 return img;
}
document.addEventListener('click',function(e){
 var link=e.target.closest&&e.target.closest('a.view');
 if(!link||e.ctrlKey||e.metaKey||e.shiftKey||e.button!==0)return;
 e.preventDefault();openView(link);
});
document.addEventListener('keydown',function(e){if(e.key==='Escape')closeView();});
// #selfcheck[=column] (used by the tests): every picture loads before the load event, which
// then sorts by the column if one is named and records what rendered. Synchronous, so a DOM
// dump right after load sees it.
var selfcheck=location.hash.indexOf('#selfcheck')===0;
if(selfcheck)Array.prototype.forEach.call(document.images,function(img){img.loading='eager';});
window.addEventListener('load',function(){
 if(!selfcheck)return;
 var column=decodeURIComponent(location.hash.slice('#selfcheck='.length));
 document.querySelectorAll('table.sortable th').forEach(function(th){
  if(column&&th.textContent===column)th.click();});
 var images=Array.prototype.slice.call(document.images),broken=[];
 images.forEach(function(img){if(!(img.complete&&img.naturalWidth>0))
  broken.push(img.getAttribute('src'));});
 var visible=cards.filter(function(card){return !card.hidden;}).length;
 var first=document.querySelector('a.view'),view=first?openView(first):null;
 var record={cards:cards.length,visible:visible,images:images.length,broken:broken.length,
  brokenSources:broken.slice(0,10),pages:pages,
  pageWidth:document.documentElement.scrollWidth,windowWidth:window.innerWidth,
  tableWidth:table?table.parentNode.scrollWidth:0,tableBox:table?table.parentNode.clientWidth:0,
  view:view?{src:view.getAttribute('src'),width:view.width}:null};
 closeView();
 document.documentElement.setAttribute('data-selfcheck',JSON.stringify(record));
});
})();
